// A producer that speaks PROTOCOL.md from Node.js with the `redis` package.
// Usage: node producer.cjs REDIS_URL QUEUE OWNER ENQUEUE_LUA (NODE_PATH finds `redis`)
// Prints one line per case: "<case> <what came back>", as producer.sh does.
const { readFileSync } = require("node:fs");
const { createClient } = require("redis");

const [url, queue, owner, scriptPath] = process.argv.slice(2);
const client = createClient({ url });

const bytes = (text) => ({ __bytes__: Buffer.from(text).toString("base64") });
const job = (v, f, k, a = []) => JSON.stringify({ v, f, a, k, et: Date.now() });

let sha;

async function enqueue(id, payload) {
  const keys = [`arq:job:${id}`, `arq:result:${id}`, queue, `${queue}:wake`, `${queue}:reply:${id}`];
  try {
    const [queued, jobId] = await client.evalSha(sha, { keys, arguments: [id, payload] });
    return `${queued} ${jobId}`;
  } catch (err) {
    return err.message;
  }
}

async function reply(id, timeoutS = 10) {
  const key = `${queue}:reply:${id}`;
  return (await client.blMove(key, key, "RIGHT", "LEFT", timeoutS)) ?? "";
}

function say(name, value) {
  console.log(`${name} ${value}`);
}

async function main() {
  await client.connect();
  sha = await client.scriptLoad(readFileSync(scriptPath, "utf8"));

  say("enqueued", await enqueue(`create-${owner}`, job("1.0", "create_task", { owner_id: owner, request_method: "tools/call" })));
  say("create_task", await reply(`create-${owner}`));

  const put = job("1.0", "put", { key: `${owner}:t`, data: bytes("hello") });
  say("enqueued", await enqueue(`put-${owner}`, put));
  say("put", await reply(`put-${owner}`));

  say("enqueued", await enqueue(`cas-${owner}`, job("1.0", "put_if_version", { key: `${owner}:t`, data: bytes("x"), expected_version: 5 })));
  say("put_if_version", await reply(`cas-${owner}`));

  say("resent", await enqueue(`put-${owner}`, put));
  say("resent_reply", await reply(`put-${owner}`));
  const ops = [[{ op: "put", id: `put-${owner}`, args: { key: `${owner}:t`, data: bytes("again") } }]];
  say("enqueued", await enqueue(`ops-${owner}`, job("1.0", "ops", {}, ops)));
  say("ops_replay", await reply(`ops-${owner}`));

  say("enqueued", await enqueue(`future-${owner}`, job("2.0", "put", {})));
  say("future_version", await reply(`future-${owner}`, 1));
  say("enqueued", await enqueue(`unknown-${owner}`, job("1.0", "frobnicate", {})));
  say("unknown_operation", await reply(`unknown-${owner}`, 1));
  say("refused", await enqueue(`garbage-${owner}`, "not json"));
  await client.set(`arq:job:garbage-${owner}`, "not json", { PX: 60000 });
  await client.zAdd(queue, { score: Date.now(), value: `garbage-${owner}` });
  await client.lPush(`${queue}:wake`, "1");
  say("malformed", await reply(`garbage-${owner}`, 1));

  await client.quit();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
