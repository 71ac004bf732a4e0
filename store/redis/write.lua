-- put and put_if_version: record, indexes, expiry and op outcome in one step.
-- KEYS: record, index, expiry, op
-- ARGV: task_id, data, expected_version, expires_at_ms, created_at_ms, op_id, capacity, op_ttl_ms
-- Reply: {status, value, due, expected}: status 0 = written (value: new version),
--   1 = version conflict (value: actual version, 0 when absent or expired),
--   2 = capacity exceeded (value: the bound). due > 0 is the record's expiry
--   when it became the owner's earliest, for the caller to lower the due-index.
--   expected echoes the expected version the outcome was judged against.
-- Empty ARGV strings mean "not given". With an op id already seen, the first
-- outcome is returned and nothing changes (a conflict: for the same expected version).

if ARGV[6] ~= '' then
  local seen = redis.call('GET', KEYS[4])
  if seen then
    local status, value, expected = string.match(seen, '^(%d+):(%d+):(%d*)$')
    -- A conflict replays only for the same expected version: the same op
    -- retried after a fresh read is a new attempt.
    if status ~= '1' or expected == ARGV[3] then
      return {tonumber(status), tonumber(value), 0, tonumber(expected) or 0}
    end
  end
end

local now = now_ms()
local task = ARGV[1]
local fields = redis.call('HMGET', KEYS[1], 'v', 'e')
local current = tonumber(fields[1]) or 0
local old_expiry = tonumber(fields[2])
if current > 0 and old_expiry and old_expiry <= now then
  current = 0
end

local status, value, due = 0, 0, 0
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= current then
  status, value = 1, current
elseif current == 0 and ARGV[7] ~= '' then
  local live = redis.call('ZCARD', KEYS[2]) - redis.call('ZCOUNT', KEYS[3], '-inf', now)
  if live >= tonumber(ARGV[7]) then
    status, value = 2, tonumber(ARGV[7])
  end
end

if status == 0 then
  value = current + 1
  if current == 0 then
    local created = ARGV[5]
    if created == '' then created = now end
    redis.call('DEL', KEYS[1])
    redis.call('ZADD', KEYS[2], created, task)
    redis.call('HSET', KEYS[1], 'c', created)
  end
  redis.call('HSET', KEYS[1], 'v', value, 'd', ARGV[2])
  if ARGV[6] ~= '' then
    redis.call('HSET', KEYS[1], 'o', ARGV[6])
  end
  if ARGV[4] ~= '' then
    local expiry = tonumber(ARGV[4])
    redis.call('HSET', KEYS[1], 'e', ARGV[4])
    redis.call('ZADD', KEYS[3], expiry, task)
    redis.call('PEXPIREAT', KEYS[1], expiry)
    if redis.call('ZRANGE', KEYS[3], 0, 0)[1] == task then
      due = expiry
    end
  else
    redis.call('HDEL', KEYS[1], 'e')
    redis.call('ZREM', KEYS[3], task)
    redis.call('PERSIST', KEYS[1])
  end
end

if ARGV[6] ~= '' then
  redis.call('SET', KEYS[4], status .. ':' .. value .. ':' .. ARGV[3], 'PX', ARGV[8])
end
return {status, value, due, tonumber(ARGV[3]) or 0}
