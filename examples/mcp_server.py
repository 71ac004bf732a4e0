"""An MCP server whose task tools keep their state in taskstore.

    python examples/mcp_server.py              # stdio
    python examples/mcp_server.py --http 8765  # streamable HTTP on 127.0.0.1:8765/mcp

Settings are taskstore's (``TASKSTORE_*`` variables and ``.env``): with none,
the embedded Redis of ``EMBEDDED_DIR``, which ``taskstore worker`` shares; run
the worker too, so tasks of a server process that died are failed. This demo
has no auth: callers without a token may use tasks only with
``TASKSTORE_ALLOW_ANONYMOUS=true``, and then share one owner. A client that
starts it over stdio must pass that on: the ``mcp`` SDK's stdio client gives
the server only a few safe variables unless told
(``StdioServerParameters(..., env=dict(os.environ))``).
"""

from __future__ import annotations

import argparse
import asyncio

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from worker.mcp_tasks import InputDeclined, TaskStoreTasks, elicit
from worker.mcp_tasks.durable import durable
from worker.producer.client import TaskStoreClient
from worker.protocol.settings import load_settings


@durable
async def durable_sleep_then_echo(text: str, seconds: float) -> str:
    """As sleep_then_echo, but run by the taskstore worker: it outlives this process.

    The worker runs it with ``TASKSTORE_MCP_TOOL_MODULES=examples/mcp_server.py``.
    """
    await asyncio.sleep(seconds)
    return text


def build(tasks: TaskStoreTasks) -> MCPServer:
    server = MCPServer("taskstore-example", extensions=[tasks], middleware=[tasks.middleware])

    @server.tool()
    @tasks.task()
    async def sleep_then_echo(text: str, seconds: float) -> str:
        """Wait ``seconds``, then answer ``text``."""
        await asyncio.sleep(seconds)
        return text

    @server.tool()
    @tasks.task()
    async def ask_name() -> str:
        """Ask the caller for a name, then greet it."""
        try:
            answer = await elicit(
                "What is your name?",
                {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                },
            )
        except InputDeclined:
            return "hello stranger"
        return f"hello {answer['name']}"

    @server.tool()
    @tasks.task()
    async def always_fails() -> str:
        """End the task failed, with a JSON-RPC error."""
        raise MCPError(-32603, "always fails")

    server.tool()(durable_sleep_then_echo)
    tasks.enable_durable(durable_sleep_then_echo)
    return server


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, metavar="PORT", help="streamable HTTP on this port")
    args = parser.parse_args()
    settings = load_settings()
    async with TaskStoreClient.connect(settings) as client:
        tasks = TaskStoreTasks(
            client.stores.tasks,
            allow_anonymous=settings.allow_anonymous,
            lease_s=settings.mcp_lease_s,
            queue=client,
        )
        server = build(tasks)
        try:
            if args.http is None:
                await server.run_stdio_async()
            else:
                await server.run_streamable_http_async(port=args.http)
        finally:
            await tasks.aclose()


if __name__ == "__main__":
    asyncio.run(main())
