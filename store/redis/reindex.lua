-- reindex: put a live record that is missing from its owner's index back in.
-- KEYS: record, idx, exp
-- ARGV: task_id
-- REPLY: repaired, due
-- repaired = 1 when an entry was added; due > 0 is the
-- record's expiry when it became the owner's earliest.

local f = redis.call('HMGET', KEYS[1], 'c', 'e')
if not f[1] or redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {0, 0}
end
if f[2] and tonumber(f[2]) <= now_ms() then
  return {0, 0}
end
redis.call('ZADD', KEYS[2], f[1], ARGV[1])
local due = 0
if f[2] then
  redis.call('ZADD', KEYS[3], f[2], ARGV[1])
  if redis.call('ZRANGE', KEYS[3], 0, 0)[1] == ARGV[1] then due = tonumber(f[2]) end
end
return {1, due}
