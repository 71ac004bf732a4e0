-- delete: the record and every index entry of it.
-- KEYS: record, idx, exp, op
-- ARGV: task_id, op_id, op_ttl_ms, sent_at_ms
-- Every key it touches is declared, as in write.lua; the op key only counts with an op id.
-- REPLY: existed, first_op, withdrawn
-- existed: 1 if a live record was removed, else 0 (the first outcome for a seen
-- op id). first_op: nil, or the name of the operation a seen op id is bound to
-- when that is not a delete (then nothing changed). withdrawn: 1 when the op id
-- was withdrawn and this attempt was sent at or before that (nothing changed).
-- The outcome is kept as "existed:delete" (see write.lua).

local expiry_key, op_key = KEYS[3], KEYS[4]

if ARGV[2] ~= '' then
  local seen = redis.call('GET', op_key)
  if seen and withdrawn(seen) then
    if not sent_after(seen, ARGV[4]) then
      return {0, false, 1}
    end
    seen = nil
  end
  if seen then
    local first = bound_to(seen)
    if first ~= '' and first ~= 'delete' then
      return {0, first, 0}
    end
    redis.call('PEXPIRE', op_key, ARGV[3])  -- replicated, for a WAIT after it (see write.lua)
    return {tonumber(string.match(seen, '^(%d+)')), false, 0}
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
  redis.call('SET', op_key, existed .. ':delete', 'PX', ARGV[3])
end
return {existed, false, 0}
