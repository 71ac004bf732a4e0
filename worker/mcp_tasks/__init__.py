"""MCP tasks kept in taskstore: an extension for the official ``mcp`` SDK (the ``mcp`` extra).

``TaskStoreTasks`` serves ``io.modelcontextprotocol/tasks`` (protocol
2026-07-28, SEP-2663) for ``MCPServer(extensions=[...])``: tools that opt in
run as tasks whose state lives in a ``TaskStore``, so any server process on
the same store answers ``tasks/get``, ``tasks/update`` and ``tasks/cancel``.
A running tool asks its caller for input with ``elicit``. Tools run in the
server process under a lease, or, decorated ``@durable``
(``worker.mcp_tasks.durable``), as jobs on the taskstore worker. On the
client side, ``TaskPoller`` calls a tool as a task and polls it to its result.
"""

from worker.mcp_tasks.client import TaskPoller
from worker.mcp_tasks.extension import TaskStoreTasks
from worker.mcp_tasks.owner import owner_of
from worker.mcp_tasks.running import InputDeclined, elicit

__all__ = ["InputDeclined", "TaskPoller", "TaskStoreTasks", "elicit", "owner_of"]
