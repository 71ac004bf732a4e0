-- get: the live record, judged by the server clock.
-- KEYS: record
-- ARGV: (none)
-- REPLY: version, data
-- version 0 and no data when the record is absent or expired.

local fields = redis.call('HMGET', KEYS[1], 'v', 'd', 'e')
if not fields[1] or (fields[3] and tonumber(fields[3]) <= now_ms()) then
  return {0, false}
end
return {tonumber(fields[1]), fields[2]}
