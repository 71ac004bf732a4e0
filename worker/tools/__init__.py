"""The operator's tools: the ``taskstore`` command (worker, health, stats, failed jobs,
retry, the protocol's scripts) and the listing and retrying of failed jobs.

They sit on top: they may use the runtime, the producer and the protocol.
"""
