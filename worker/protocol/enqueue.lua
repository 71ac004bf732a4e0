-- Enqueue one job: the one way every producer, in any language, puts a job on
-- the queue (PROTOCOL.md). Load it with SCRIPT LOAD and call it with EVALSHA.
-- KEYS: job, result, queue, writes, wake, reply
-- ARGV: job_id, job, resend_qt
-- REPLY: added, job_id, qt
-- Keys: arq:job:<id>, arq:result:<id>, the queue (sorted set), <queue>:writes (sorted
-- set), <queue>:wake, <queue>:reply:<id>. Protocol 1.3 and earlier call it with five
-- keys (no <queue>:writes) and two arguments; such a call keeps write jobs in <queue>.
-- The job is a JSON object; resend_qt, optional, is the qt of an earlier attempt
-- this job sends again (never later than now), as `taskstore retry` does.
-- added = 1: queued; 0: that id is already queued, running or answered, and nothing
-- changed: wait on its reply key. qt: when the queue took the job (ms, by this
-- server's clock); a producer fences the job's op ids by it (PROTOCOL.md: Giving up).
-- The job is stamped with "q" (qt, its function, how many writes it carries and the
-- lanes of the owners it writes to) and goes on <queue>:writes when it is a write
-- job, else on <queue>, each scored by qt and kept in the order jobs came.
-- Errors (nothing written) start 'ERR taskstore: ' and name what is wrong.
local MAX_MS = 9007199254740991
local id, job = ARGV[1], ARGV[2]
local function refuse(message)
  return redis.error_reply('ERR taskstore: ' .. message)
end
if #id < 1 or #id > 200 or not string.match(id, '^[%w_%.:%-]+$') then
  return refuse('job id must be 1-200 characters of [A-Za-z0-9_.:-]')
end
local legacy = #KEYS == 5
local queue = KEYS[3]
local writes, wake, reply = KEYS[4], KEYS[5], KEYS[6]
if legacy then
  writes, wake, reply = nil, KEYS[4], KEYS[5]
end
if #KEYS < 5 or #KEYS > 6 or KEYS[1] ~= 'arq:job:' .. id or KEYS[2] ~= 'arq:result:' .. id
    or (writes and writes ~= queue .. ':writes') or wake ~= queue .. ':wake'
    or reply ~= queue .. ':reply:' .. id then
  return refuse('KEYS must be arq:job:<id>, arq:result:<id>, <queue>, <queue>:writes, '
    .. '<queue>:wake, <queue>:reply:<id>')
end
if #job > MAX_JOB_BYTES then
  return refuse('the job is ' .. #job .. ' bytes; a job is at most ' .. MAX_JOB_BYTES)
end
local body = string.match(job, '^%s*{(.*)$')
local ok, decoded = pcall(cjson.decode, job)
if not body or not ok or type(decoded) ~= 'table' then
  return refuse('the job is not a JSON object')
end

-- An array decodes to a table keyed 1..n, an object to one keyed by strings; [] and {}
-- both decode empty, and both pass as either.
local function shaped(value, array)
  if type(value) ~= 'table' then
    return false
  end
  local n = 0
  for key in pairs(value) do
    if (type(key) == 'number') ~= array then
      return false
    end
    n = n + 1
  end
  return not array or n == #value
end
local function whole_ms(value, low, high)
  return type(value) == 'number' and value == math.floor(value) and value >= low
    and value <= high
end
local problem
if type(decoded.v) ~= 'string' or not string.match(decoded.v, '^%d+%.%d+$') then
  problem = 'v: the protocol version, "<major>.<minor>"'
elseif type(decoded.f) ~= 'string' or #decoded.f > 128
    or not string.match(decoded.f, '^[%a_][%w_%.:%-]*$') then
  problem = 'f: the job\'s name, 1-128 characters of [A-Za-z0-9_.:-]'
elseif not shaped(decoded.a, true) then
  problem = 'a: the positional arguments, an array'
elseif not shaped(decoded.k, false) then
  problem = 'k: the arguments by name, an object'
elseif not whole_ms(decoded.et, 0, MAX_MS) then
  problem = 'et: when the job was sent, an integer of ms from 0 to ' .. MAX_MS
elseif decoded.wait_ms ~= nil and decoded.wait_ms ~= cjson.null
    and not whole_ms(decoded.wait_ms, 1, MAX_WAIT_MS) then
  problem = 'wait_ms: how long its producer waits, an integer of ms from 1 to ' .. MAX_WAIT_MS
elseif decoded.reply_to ~= nil and (type(decoded.reply_to) ~= 'string'
    or #decoded.reply_to > 64 or not string.match(decoded.reply_to, '^[%w_%.:%-]+$')) then
  problem = 'reply_to: its producer\'s reply list, 1-64 characters of [A-Za-z0-9_.:-]'
elseif decoded.tc ~= nil and not shaped(decoded.tc, false) then
  problem = 'tc: the W3C trace context, an object of strings'
elseif decoded.t ~= nil or decoded.q ~= nil then
  problem = (decoded.t ~= nil and 't' or 'q') .. ': set by the queue, never by a producer'
end
if not problem and decoded.tc ~= nil then
  for _, value in pairs(decoded.tc) do
    if type(value) ~= 'string' or #value > 1024 then
      problem = 'tc: the W3C trace context, an object of strings'
    end
  end
end
if problem then
  return refuse(problem)
end

local now = queue_ms()
local qt = now
local resend = ARGV[3]
if resend ~= nil and resend ~= '' then
  qt = tonumber(resend)
  if not qt or qt ~= math.floor(qt) or qt < 0 or qt > now then
    return refuse('resend_qt: the qt of an earlier attempt, an integer of ms not after now')
  end
end
if redis.call('EXISTS', KEYS[1], KEYS[2], reply) > 0 then
  local held = redis.call('GET', KEYS[1])
  local earlier = held and stamp_of(held)
  return {0, id, earlier or now}
end

local write = is_write_job(decoded.f)
local lanes, n = {}, 1
if write then
  lanes, n = lanes_of(decoded)
end
local stamp = string.format('{"q":{"t":%d,"f":"%s","n":%d,"l":[%s]},', qt, decoded.f, n,
  table.concat(lanes, ','))
local set = (write and writes) or queue
-- Jobs of one millisecond keep the order they came in: each scores just above the
-- last ready one (1/1024 ms apart; a double holds that exactly for the next century).
local score = now
local last = redis.call('ZREVRANGEBYSCORE', set, '(' .. (now + 1), '-inf', 'WITHSCORES',
  'LIMIT', 0, 1)
if last[2] and tonumber(last[2]) >= now then
  score = tonumber(last[2]) + 1 / 1024
end
-- As arq: the job record outlives its start time by a day.
redis.call('SET', KEYS[1], stamp .. body, 'PX', 86400000)
redis.call('ZADD', set, string.format('%.17g', score), id)
-- One token is enough: a worker that wakes takes every ready job it has room for.
if redis.call('LLEN', wake) == 0 then
  redis.call('LPUSH', wake, '1')
  redis.call('PEXPIRE', wake, 86400000)
end
return {1, id, qt}
