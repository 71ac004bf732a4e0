// A client on the official TypeScript MCP SDK 1.x (protocol 2025-11-25, tasks of SEP-1686)
// against examples/mcp_server.py over stdio, as an MCP host built on that SDK runs it.
// Usage: node typescript_client.cjs PYTHON SERVER_SCRIPT
// Prints one JSON line per case: {"case": ..., ...what came back}.
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StdioClientTransport } = require("@modelcontextprotocol/sdk/client/stdio.js");

const [python, script] = process.argv.slice(2);
const say = (name, value) => console.log(JSON.stringify({ case: name, ...value }));

// Every message of a task-augmented call, up to its result or error.
async function streamed(client, name, args) {
  const seen = [];
  const stream = client.experimental.tasks.callToolStream(
    { name, arguments: args },
    undefined,
    { task: { ttl: 60000 } },
  );
  for await (const message of stream) {
    if (message.type === "error") {
      seen.push({ type: "error", code: message.error.code, message: message.error.message });
    } else if (message.type === "result") {
      seen.push({ type: "result", text: message.result.content[0].text });
    } else {
      seen.push({ type: message.type, status: message.task.status, taskId: message.task.taskId });
    }
  }
  return seen;
}

async function errorOf(call) {
  try {
    await call();
    return { code: null };
  } catch (error) {
    return { code: error.code, message: error.message };
  }
}

async function main() {
  const transport = new StdioClientTransport({ command: python, args: [script], env: process.env });
  const client = new Client({ name: "taskstore-interop", version: "1.0.0" });
  await client.connect(transport);
  say("initialize", {
    version: transport._protocolVersion ?? null,
    tasks: client.getServerCapabilities().tasks ?? null,
  });

  const tools = await client.listTools();
  const support = {};
  for (const tool of tools.tools) support[tool.name] = tool.execution?.taskSupport ?? null;
  say("tools", { support });

  const plain = await client.callTool({ name: "sleep_then_echo", arguments: { text: "plain", seconds: 0 } });
  say("plain", { text: plain.content[0].text });

  say("in_process", { messages: await streamed(client, "sleep_then_echo", { text: "in process", seconds: 0.3 }) });
  say("durable", { messages: await streamed(client, "durable_sleep_then_echo", { text: "durable", seconds: 0.3 }) });
  say("failing", { messages: await streamed(client, "always_fails", {}) });

  // A long task, then what the task methods say of it while it runs.
  const stream = client.experimental.tasks.callToolStream(
    { name: "sleep_then_echo", arguments: { text: "never", seconds: 60 } },
    undefined,
    { task: { ttl: 60000 } },
  );
  const first = (await stream.next()).value;
  const taskId = first.task.taskId;
  const running = await client.experimental.tasks.getTask(taskId);
  const listed = await client.experimental.tasks.listTasks();
  const cancelled = await client.experimental.tasks.cancelTask(taskId);
  const after = await client.experimental.tasks.getTask(taskId);
  const again = await errorOf(() => client.experimental.tasks.cancelTask(taskId));
  say("long", {
    created: first.type,
    running: running.status,
    listed: listed.tasks.some((t) => t.taskId === taskId),
    cancelled: cancelled.status,
    after: after.status,
    cancel_again: again.code,
  });

  say("unknown", {
    get: (await errorOf(() => client.experimental.tasks.getTask("no-such-task"))).code,
    result: (await errorOf(() => client.experimental.tasks.getTaskResult("no-such-task"))).code,
    cancel: (await errorOf(() => client.experimental.tasks.cancelTask("no-such-task"))).code,
  });
  await client.close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
