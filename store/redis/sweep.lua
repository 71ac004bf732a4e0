-- sweep: remove the expired records among some of an owner's task ids.
-- KEYS: idx, exp, records...
-- ARGV: tasks...
-- REPLY: removed, next_expiry, more
-- The caller reads the candidates from the expiry index first; each is
-- removed only if its expiry has passed by the server clock now, so a record
-- written again since keeps its new life. next_expiry is the owner's
-- earliest remaining expiry (0 if none); more = 1 when expired records remain.
-- A record counts once whether its hash was still there or the server had
-- already dropped it and only index entries remained.

local now = now_ms()
local removed = 0
for i, task in ipairs(ARGV) do
  local expiry = tonumber(redis.call('ZSCORE', KEYS[2], task))
  if expiry and expiry <= now then
    redis.call('DEL', KEYS[i + 2])
    redis.call('ZREM', KEYS[1], task)
    redis.call('ZREM', KEYS[2], task)
    removed = removed + 1
  end
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local next_expiry, more = 0, 0
if first[2] then
  next_expiry = tonumber(first[2])
  if next_expiry <= now then more = 1 end
end
return {removed, next_expiry, more}
