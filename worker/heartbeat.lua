-- A worker's heartbeat, by the server's clock.
-- KEYS[1] the queue's workers (sorted set: worker id by last heartbeat, ms)
-- ARGV[1] worker id, ARGV[2] how long (ms) a silent worker stays listed
-- Reply: the server's time in ms.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return now
