-- fetch: the live records among some of an owner's task ids, by the server clock.
-- KEYS: idx, exp, records...
-- ARGV: tasks...
-- REPLY: pruned, versions, data
-- versions[i] and data[i] belong to tasks[i], whose record key is records[i];
-- version 0 and no data when it is absent or expired (the sweep removes
-- expired ones). An index entry whose record is gone although it has not
-- expired is an orphan and is removed; pruned counts those.

local now = now_ms()
local versions, data = {}, {}
local pruned = 0
for i, task in ipairs(ARGV) do
  local f = redis.call('HMGET', KEYS[i + 2], 'v', 'd', 'e')
  versions[i], data[i] = 0, false
  if not f[1] then
    local expiry = tonumber(redis.call('ZSCORE', KEYS[2], task))
    if (not expiry or expiry > now) and redis.call('ZREM', KEYS[1], task) == 1 then
      redis.call('ZREM', KEYS[2], task)
      pruned = pruned + 1
    end
  elseif not (f[3] and tonumber(f[3]) <= now) then
    versions[i], data[i] = tonumber(f[1]), f[2]
  end
end
return {pruned, versions, data}
