-- Enqueue one job: the one way every producer, in any language, puts a job on
-- the queue (PROTOCOL.md). Load it with SCRIPT LOAD and call it with EVALSHA.
-- KEYS: job, result, queue, wake, reply
-- ARGV: job_id, job
-- REPLY: added, job_id
-- Keys: arq:job:<id>, arq:result:<id>, the queue (sorted set), <queue>:wake,
-- <queue>:reply:<id>; the job is a JSON object. added = 1: queued; 0: that id
-- is already queued, running or answered, and nothing changed: wait on its reply key.
-- Errors (nothing written): keys that are not the job id's, an id that is not
-- 1-200 characters of [A-Za-z0-9_.:-], or a job that is not an object with "f"
-- (string), "a" (array), "k" (object), "et" (number) and "v" ("<major>.<minor>").
-- Which versions, operations and arguments a worker accepts is the worker's
-- to judge: it answers on the reply key.
local id, job = ARGV[1], ARGV[2]
if #id < 1 or #id > 200 or not string.match(id, '^[%w_%.:%-]+$') then
  return redis.error_reply('ERR taskstore: job id must be 1-200 characters of [A-Za-z0-9_.:-]')
end
local queue = KEYS[3]
if KEYS[1] ~= 'arq:job:' .. id or KEYS[2] ~= 'arq:result:' .. id
    or KEYS[4] ~= queue .. ':wake' or KEYS[5] ~= queue .. ':reply:' .. id then
  return redis.error_reply('ERR taskstore: KEYS must be arq:job:<id>, arq:result:<id>, '
    .. '<queue>, <queue>:wake, <queue>:reply:<id>')
end
local ok, decoded = pcall(cjson.decode, job)
if not ok or type(decoded) ~= 'table' then
  return redis.error_reply('ERR taskstore: the job is not a JSON object')
end
if type(decoded.f) ~= 'string' or type(decoded.a) ~= 'table' or type(decoded.k) ~= 'table'
    or type(decoded.et) ~= 'number' or type(decoded.v) ~= 'string'
    or not string.match(decoded.v, '^%d+%.%d+$') then
  return redis.error_reply('ERR taskstore: a job is {"v": "<major>.<minor>", "f": <string>, '
    .. '"a": <array>, "k": <object>, "et": <ms>}')
end
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[5]) > 0 then
  return {0, id}
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
-- As arq: the job record outlives its start time by a day.
redis.call('SET', KEYS[1], job, 'PX', 86400000)
redis.call('ZADD', queue, now, id)
-- One token is enough: a worker that wakes takes every ready job it has room for.
if redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('LPUSH', KEYS[4], '1')
  redis.call('PEXPIRE', KEYS[4], 86400000)
end
return {1, id}
