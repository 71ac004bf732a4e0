-- put and put_if_version: record, indexes, expiry and op outcome in one step.
-- KEYS: record, idx, exp, op
-- ARGV: task_id, data, op_id, options, op_name
-- Every key it touches is declared; all four share the owner's hash tag, so
-- one slot. The op key is used only when an op id is given.
-- options packs "expected_version,expires_at_ms,created_at_ms,capacity,op_ttl_ms,sent_at_ms"
-- into one argument (fewer to encode per call); an empty field or op_id means
-- "not given".
-- REPLY: status, value, due, expected, current_data
-- status 0 = written (value: new
--   version), 1 = version conflict (value: actual version, 0 when absent or
--   expired; current_data: the live record's data, so a retry need not read it),
--   2 = capacity exceeded (value: the bound), 3 = the op id names another
--   operation (current_data: that operation's name; nothing changed), 4 = the op
--   id was withdrawn and this attempt was sent at or before that (withdraw.lua;
--   nothing changed). due > 0
--   is the record's expiry
--   when it became the owner's earliest, for the caller to lower the due-index.
--   expected echoes the expected version the outcome was judged against.
-- With an op id already seen, the first outcome is returned and nothing
-- changes but the outcome's own TTL; a conflict replays only for the same
-- expected version, so the same op retried after a fresh read is a new attempt.
-- An op id is bound to op_name: its outcome is kept as
-- "status:value:expected:op_name" (a delete's as "existed:delete"), and the
-- same op id under another name answers status 3.

local expected, expiry, created, capacity, op_ttl, sent =
  string.match(ARGV[4], '^(%d*),(%d*),(%d*),(%d*),(%d+),(%d*)$')
local op_id = ARGV[3]
local expiry_key, op_key = KEYS[3], KEYS[4]

if op_id ~= '' then
  local seen = redis.call('GET', op_key)
  if seen and withdrawn(seen) then
    if not sent_after(seen, sent) then
      return {4, 0, 0, 0, false}
    end
    seen = nil
  end
  if seen then
    local first = bound_to(seen)
    if first ~= '' and first ~= ARGV[5] then
      return {3, 0, 0, 0, first}
    end
    local status, value, judged = string.match(seen, '^(%d+):(%d+):(%d*)')
    if status ~= '1' or judged == expected then
      -- Refreshing the outcome makes the replay a replicated write, so a WAIT
      -- after it also covers the first run, which may not have reached a replica.
      redis.call('PEXPIRE', op_key, op_ttl)
      -- A replayed conflict carries the data it was judged against while the record
      -- still holds that version (false once it has moved on: read it then).
      local data = false
      if status == '1' and value ~= '0' then
        local live = redis.call('HMGET', KEYS[1], 'v', 'd', 'e')
        if live[1] == value and (not live[3] or tonumber(live[3]) > now_ms()) then
          data = live[2]
        end
      end
      return {tonumber(status), tonumber(value), 0, tonumber(judged) or 0, data}
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
local current_data = false
if expected ~= '' and tonumber(expected) ~= current then
  status, value = 1, current
  if current > 0 then current_data = redis.call('HGET', KEYS[1], 'd') end
elseif current == 0 and capacity ~= '' then
  local live = redis.call('ZCARD', KEYS[2]) - redis.call('ZCOUNT', expiry_key, '-inf', now)
  if live >= tonumber(capacity) then
    status, value = 2, tonumber(capacity)
  end
end

if status == 0 then
  value = current + 1
  -- One HSET per write; expiry bookkeeping only where an expiry is or was.
  local hash = {'v', value, 'd', ARGV[2]}
  if current == 0 then
    if created == '' then created = now end
    if fields[1] then redis.call('DEL', KEYS[1]) end
    redis.call('ZADD', KEYS[2], created, task)
    hash[#hash + 1], hash[#hash + 2] = 'c', created
  end
  if op_id ~= '' then
    hash[#hash + 1], hash[#hash + 2] = 'o', op_id
  end
  if expiry ~= '' then
    hash[#hash + 1], hash[#hash + 2] = 'e', expiry
  end
  redis.call('HSET', KEYS[1], unpack(hash))
  if expiry ~= '' then
    redis.call('ZADD', expiry_key, expiry, task)
    redis.call('PEXPIREAT', KEYS[1], expiry)
    if redis.call('ZRANGE', expiry_key, 0, 0)[1] == task then
      due = tonumber(expiry)
    end
  elseif old_expiry then
    redis.call('HDEL', KEYS[1], 'e')
    redis.call('ZREM', expiry_key, task)
    redis.call('PERSIST', KEYS[1])
  end
end

if op_id ~= '' then
  redis.call('SET', op_key, status .. ':' .. value .. ':' .. expected .. ':' .. ARGV[5], 'PX', op_ttl)
end
return {status, value, due, tonumber(expected) or 0, current_data}
