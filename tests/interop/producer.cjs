// A producer that speaks PROTOCOL.md (1.5) from Node.js with the `redis` package.
// Usage: node producer.cjs REDIS_URL QUEUE OWNER SCRIPTS_DIR KEY_PREFIX [load TOTAL IN_FLIGHT]
// (NODE_PATH finds `redis`)
// SCRIPTS_DIR holds what `taskstore protocol` prints: enqueue, settle, withdraw, get, index-page, fetch.
// Prints one line per case: "<case> <what came back>", as producer.sh does.
const { readFileSync } = require("node:fs");
const { createClient } = require("redis");

const [url, queue, owner, scripts, prefix, mode] = process.argv.slice(2);
const client = createClient({ url });

const bytes = (text) => ({ __bytes__: Buffer.from(text).toString("base64") });
const job = (v, f, k, a = []) => JSON.stringify({ v, f, a, k, et: Date.now() });

const sha = {};
const tag = `${prefix}:{${owner}}`; // every key of the owner shares its hash tag

const enqueueKeys = (q, id) => [`arq:job:${id}`, `arq:result:${id}`, q, `${q}:writes`, `${q}:wake`, `${q}:reply:${id}`];
const taken = {}; // each job's qt: when the queue took it, by the queue's clock

async function enqueue(id, payload, q = queue) {
  try {
    const [queued, jobId, qt] = await client.evalSha(sha.enqueue, { keys: enqueueKeys(q, id), arguments: [id, payload] });
    taken[id] = qt;
    return `${queued} ${jobId}`;
  } catch (err) {
    return err.message;
  }
}

async function reply(id, timeoutS = 10) {
  const key = `${queue}:reply:${id}`;
  return (await client.blMove(key, key, "RIGHT", "LEFT", timeoutS)) ?? "";
}

async function runJob(id, payload) {
  await enqueue(id, payload);
  return reply(id);
}

// `total` single-write jobs, `inFlight` at a time, their replies on one list of this
// producer's (reply_to, protocol 1.5), read by one connection for all. Answers
// "<answered ok> <delivered once> <left on the list> <writes/s> <p50 ms>".
async function load(total, inFlight) {
  const replyTo = `node-${owner}`;
  const replies = `${queue}:replies:${replyTo}`;
  const reader = await client.duplicate().connect();
  const waiting = new Map();
  const delivered = new Map();
  let reading = true;
  const readLoop = (async () => {
    while (reading) {
      let got = (await reader.rPopCount(replies, 1000)) ?? [];
      if (got.length === 0) {
        const one = await reader.brPop(replies, 0.2);
        got = one ? [one.element] : [];
      }
      for (const entry of got) {
        const space = entry.indexOf(" ");
        const id = entry.slice(0, space);
        delivered.set(id, (delivered.get(id) ?? 0) + 1);
        waiting.get(id)?.(entry.slice(space + 1));
      }
    }
  })();
  const answered = new Set();
  const took = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < total) {
      const id = `load-${owner}-${next++}`;
      const sent = performance.now();
      const got = new Promise((resolve) => waiting.set(id, resolve));
      const payload = JSON.stringify({ v: "1.5", f: "put", a: [], k: { key: `${owner}:${id}`, data: bytes("x") }, et: Date.now(), reply_to: replyTo });
      await enqueue(id, payload);
      if (JSON.parse(await got).ok) answered.add(id);
      took.push(performance.now() - sent);
      waiting.delete(id);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  reading = false;
  await readLoop;
  took.sort((a, b) => a - b);
  const once = [...delivered.values()].filter((n) => n === 1).length;
  const left = await client.lLen(replies);
  await reader.quit();
  return `${answered.size} ${once} ${left} ${Math.round(total / seconds)} ${took[Math.floor(total / 2)].toFixed(1)}`;
}

function say(name, value) {
  console.log(`${name} ${value}`);
}

async function main() {
  await client.connect();
  for (const name of ["enqueue", "settle", "withdraw", "get", "index-page", "fetch"]) {
    sha[name] = await client.scriptLoad(readFileSync(`${scripts}/${name}.lua`, "utf8"));
  }
  if (mode === "load") {  // the load alone, as the benchmarks run it
    say("load", await load(Number(process.argv[8]), Number(process.argv[9])));
    await client.quit();
    return;
  }

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
  // The same op id for another operation: refused, nothing applied.
  const reuse = [[{ op: "delete", id: `put-${owner}`, args: { key: `${owner}:t` } }]];
  say("enqueued", await enqueue(`reuse-${owner}`, job("1.0", "ops", {}, reuse)));
  say("op_id_reused", await reply(`reuse-${owner}`));

  say("enqueued", await enqueue(`future-${owner}`, job("2.0", "put", {})));
  say("future_version", await reply(`future-${owner}`, 1));
  say("enqueued", await enqueue(`unknown-${owner}`, job("1.0", "frobnicate", {})));
  say("unknown_operation", await reply(`unknown-${owner}`, 1));
  say("refused", await enqueue(`garbage-${owner}`, "not json"));
  // Fields the queue sets, and malformed ones: refused by the script, each named.
  for (const [field, bad] of [["q", { q: { t: 1 } }], ["t", { t: 3 }], ["et", { et: 1.5 }], ["wait_ms", { wait_ms: 0 }], ["f", { f: "ops put" }], ["reply_to", { reply_to: "no spaces" }]]) {
    say("refused_field", `${field} ${await enqueue(`field-${field}-${owner}`, JSON.stringify({ ...JSON.parse(job("1.4", "put", {})), ...bad }))}`);
  }
  await client.set(`arq:job:garbage-${owner}`, "not json", { PX: 60000 });
  await client.zAdd(`${queue}:writes`, { score: 0, value: `garbage-${owner}` });
  await client.lPush(`${queue}:wake`, "1");
  say("malformed", await reply(`garbage-${owner}`, 1));

  // Reads: a record, a task with its result, a page of the owner's tasks (two steps).
  const record = await client.evalSha(sha.get, { keys: [`${tag}:t:t`], arguments: [] });
  say("get_record", `${record[0]} ${record[1]}`);
  const taskId = JSON.parse(await reply(`create-${owner}`)).value.task.task_id;
  const done = { task_id: taskId, owner_id: owner, status: "completed", result: { content: [] } };
  say("enqueued", await enqueue(`done-${owner}`, job("1.0", "complete_with_result", done)));
  await reply(`done-${owner}`);
  const [, task] = await client.evalSha(sha.get, { keys: [`${tag}:t:${taskId}`], arguments: [] });
  say("get_task", task);
  const [ids] = await client.evalSha(sha["index-page"], { keys: [`${tag}:idx`], arguments: ["1", "", "", "10"] });
  const keys = [`${tag}:idx`, `${tag}:exp`, ...ids.map((id) => `${tag}:t:${id}`)];
  const [pruned, versions, data] = await client.evalSha(sha.fetch, { keys, arguments: ids });
  say("list_page", `${ids.length} ${1 + versions.length + data.length}`);
  say("list_pruned", pruned);

  // Giving up: a job no worker took is withdrawn; an answered one is left to its reply.
  const settle = async (q, id) => {
    const jobKeys = [`arq:job:${id}`, `arq:in-progress:${id}`, `arq:retry:${id}`, `arq:result:${id}`];
    const keys = [...jobKeys, q, `${q}:writes`, `${q}:reply:${id}`, `${q}:workers`];
    return client.evalSha(sha.settle, { keys, arguments: [id, "6000"] });
  };
  const idle = `${queue}-idle`; // a queue no worker serves
  const waiting = job("1.4", "put", { key: `${owner}:idle`, data: bytes("hello") });
  await enqueue(`idle-${owner}`, waiting, idle);
  say("settle_idle", await settle(idle, `idle-${owner}`));
  say("settle_again", await settle(idle, `idle-${owner}`));
  say("settle_answered", await settle(queue, `put-${owner}`));
  await client.del([`${idle}:wake`]);
  // Withdrawn is not yet "not applied": withdraw the op id (the job id, for a job of one
  // write) in the store, fenced by the qt the queue gave the job. Then no copy of that
  // job can apply, even if it comes back...
  const opKey = `${tag}:op:idle-${owner}`;
  say("withdraw_op", await client.evalSha(sha.withdraw, { keys: [opKey], arguments: [`${taken[`idle-${owner}`]}`, "86400000"] }));
  const copy = JSON.parse(waiting);
  copy.q = { t: taken[`idle-${owner}`], f: "put", n: 1, l: [] }; // as the queue stamped it
  await client.set(`arq:job:idle-${owner}`, JSON.stringify(copy), { PX: 60000 });
  await client.zAdd(`${queue}:writes`, { score: 0, value: `idle-${owner}` });
  say("withdrawn_copy", await reply(`idle-${owner}`));
  // ...while the same write sent later, under the same op id, is a new attempt.
  const later = [[{ op: "put", id: `idle-${owner}`, args: { key: `${owner}:later`, data: bytes("now") } }]];
  say("withdrawn_later", await runJob(`later-${owner}`, job("1.4", "ops", {}, later)));

  // One reply of each error a producer can meet, each from a job of its own.
  const other = `${owner}x`;
  const nested = (depth) => (depth === 0 ? 1 : { n: nested(depth - 1) });
  const open = JSON.parse(await runJob(`open-${owner}`, job("1.0", "create_task", { owner_id: owner, request_method: "tools/call" }))).value.task.task_id;
  const mistakes = {
    CapacityExceeded: [
      job("1.0", "put", { key: `${other}:a`, data: bytes("1"), max_records_per_owner: 1 }),
      job("1.0", "put", { key: `${other}:b`, data: bytes("2"), max_records_per_owner: 1 }),
    ],
    InvalidKey: [job("1.0", "put", { key: "no-colon", data: bytes("x") })],
    RecordTooLarge: [job("1.0", "put", { key: `${owner}:big`, data: { __bytes__: Buffer.alloc(4 * 1024 * 1024 + 1).toString("base64") } })],
    InvalidParams: [job("1.0", "create_task", { owner_id: owner, request_method: "tools/call", ttl_ms: 10 ** 12 })],
    TaskNotFound: [job("1.0", "cancel_task", { task_id: "no-such-task", owner_id: owner })],
    InvalidTransition: [job("1.0", "cancel_task", { task_id: taskId, owner_id: owner })],
    VariableSizeExceeded: [job("1.0", "set_variables", { task_id: open, owner_id: owner, variables: { deep: nested(12) } })],
    ResourceExhausted: Array.from({ length: 6 }, () => job("1.0", "create_task", { owner_id: `${owner}y`, request_method: "tools/call" })),
    DeadlineExceeded: [job("1.0", "ops", { deadline_ms: 1 }, [[{ op: "put", id: "late", args: { key: `${owner}:late`, data: bytes("x") } }]])],
    "InvalidArgument/unknown": [job("1.0", "put_if_version", { key: `${owner}:t`, data: bytes("x"), expected_version: 1, nope: 1 })],
    "InvalidArgument/missing": [job("1.0", "put", { key: `${owner}:t` })],
    "InvalidArgument/type": [job("1.0", "apply_batch", {}, ["not a list"])],
    "InvalidArgument/version-0": [job("1.0", "put_if_version", { key: `${owner}:t`, data: bytes("x"), expected_version: 0 })],
  };
  for (const [expected, payloads] of Object.entries(mistakes)) {
    let last;
    for (const [i, payload] of payloads.entries()) {
      last = await runJob(`${expected.replace("/", "-")}-${i}-${owner}`, payload);
    }
    say("error", `${expected} ${last}`);
  }

  // A job in the producer's trace: its W3C trace context in "tc" (protocol 1.2).
  const traced = JSON.stringify({
    v: "1.2", f: "put", a: [], k: { key: `${owner}:traced`, data: bytes("x") }, et: Date.now(),
    tc: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
  });
  say("traced", await runJob(`traced-${owner}`, traced));

  say("load", await load(2000, 50));

  await client.quit();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
