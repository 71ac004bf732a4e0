-- A worker's heartbeat, by the server's clock.
-- KEYS[1] the queue's workers (sorted set: worker id by last heartbeat, ms)
-- KEYS[2] the workers' running jobs (hash: worker id -> jobs it runs now)
-- ARGV[1] worker id, ARGV[2] how long (ms) a silent worker stays listed,
-- ARGV[3] the jobs this worker runs now
-- Reply: the server's time in ms.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
for _, worker in ipairs(gone) do
  redis.call('ZREM', KEYS[1], worker)
  redis.call('HDEL', KEYS[2], worker)
end
return now
