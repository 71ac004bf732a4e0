-- delete: the record and every index entry of it.
-- KEYS: record, idx, exp, op
-- ARGV: task_id, op_id, op_ttl_ms
-- Every key it touches is declared, as in write.lua; the op key only counts with an op id.
-- REPLY: existed
-- 1 if a live record was removed, else 0 (the first outcome for a seen op id).

local expiry_key, op_key = KEYS[3], KEYS[4]

if ARGV[2] ~= '' then
  local seen = redis.call('GET', op_key)
  if seen then
    redis.call('PEXPIRE', op_key, ARGV[3])  -- replicated, for a WAIT after it (see write.lua)
    return tonumber(seen)
  end
end

local fields = redis.call('HMGET', KEYS[1], 'v', 'e')
local existed = 0
if fields[1] and not (fields[2] and tonumber(fields[2]) <= now_ms()) then
  existed = 1
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', expiry_key, ARGV[1])
if ARGV[2] ~= '' then
  redis.call('SET', op_key, existed, 'PX', ARGV[3])
end
return existed
