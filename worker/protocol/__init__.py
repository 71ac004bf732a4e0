"""The queue protocol both sides share (PROTOCOL.md), and what they are configured by.

A producer and a worker meet only here: the queue's keys (``keys``), the Lua
scripts and their descriptions (``scripts``), the job's JSON and its reply
envelope (``serialization``, ``envelope``), the protocol's version, the
errors a caller can be answered with, the writes a job may carry
(``writes``), trace context on jobs, and the settings and connections both
build at start-up. It imports ``store`` and nothing else of ``worker``.
"""
