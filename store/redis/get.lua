-- get: the live record, judged by the server clock.
-- KEYS: record
-- ARGV: (none)
-- Reply: {version, data}, or nil when absent or expired.

local fields = redis.call('HMGET', KEYS[1], 'v', 'd', 'e')
if not fields[1] then
  return false
end
if fields[3] and tonumber(fields[3]) <= now_ms() then
  return false
end
return {fields[1], fields[2]}
