"""An MCP server whose task tools keep their state in taskstore.

    python examples/mcp_server.py              # stdio
    python examples/mcp_server.py --http 8765  # streamable HTTP on 127.0.0.1:8765/mcp

Settings are taskstore's (``TASKSTORE_*`` variables and ``.env``): with none,
the embedded Redis of ``EMBEDDED_DIR``, which ``taskstore worker`` shares; run
the worker too, so tasks of a server process that died are failed. This demo
has no auth: callers without a token may use tasks only with
``TASKSTORE_ALLOW_ANONYMOUS=true``, and then share one owner.
"""

from __future__ import annotations

import argparse
import asyncio

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from worker.connections import open_stores
from worker.mcp_tasks import InputDeclined, TaskStoreTasks, elicit
from worker.settings import load_settings


def build(tasks: TaskStoreTasks) -> MCPServer:
    server = MCPServer("taskstore-example", extensions=[tasks])

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

    return server


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, metavar="PORT", help="streamable HTTP on this port")
    args = parser.parse_args()
    settings = load_settings()
    stores = await open_stores(settings)
    tasks = TaskStoreTasks(
        stores.tasks, allow_anonymous=settings.allow_anonymous, lease_s=settings.mcp_lease_s
    )
    server = build(tasks)
    try:
        if args.http is None:
            await server.run_stdio_async()
        else:
            await server.run_streamable_http_async(port=args.http)
    finally:
        await tasks.aclose()
        await stores.backend.aclose()


if __name__ == "__main__":
    asyncio.run(main())
