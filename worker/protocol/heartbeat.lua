-- A worker's heartbeat, by the server's clock.
-- KEYS: workers, running, batches
-- ARGV: worker_id, forget_ms, jobs, in_flight
-- REPLY: now_ms
-- workers: the queue's workers by last heartbeat, ms (sorted set); running:
-- worker id -> jobs it runs now (hash); batches: worker id -> batches it holds now
-- (hash). forget_ms: how long a silent worker stays listed; jobs, in_flight: what this
-- worker runs now; now_ms: the server's time.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
for _, worker in ipairs(gone) do
  redis.call('ZREM', KEYS[1], worker)
  redis.call('HDEL', KEYS[2], worker)
  redis.call('HDEL', KEYS[3], worker)
end
return now
