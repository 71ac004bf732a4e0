-- sweep: remove up to `batch` expired records of one owner.
-- KEYS: index, expiry
-- ARGV: record_prefix, batch
-- Reply: {removed, next_expiry, more}: next_expiry is the owner's earliest
-- remaining expiry (0 if none); more = 1 when expired records remain.
-- A record counts once whether its hash was still there or the server had
-- already dropped it and only index entries remained.

local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, task in ipairs(expired) do
  redis.call('DEL', ARGV[1] .. task)
  redis.call('ZREM', KEYS[1], task)
end
if #expired > 0 then
  redis.call('ZREM', KEYS[2], unpack(expired))
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local next_expiry, more = 0, 0
if first[2] then
  next_expiry = tonumber(first[2])
  if next_expiry <= now then more = 1 end
end
return {#expired, next_expiry, more}
