-- Keep one failed job, and only the last ARGV[4] of them.
-- KEYS[1] failed jobs (sorted set: job id by failure time, ms)
-- KEYS[2] their records (hash: job id -> JSON without arguments)
-- KEYS[3] what a retry re-enqueues (hash: job id -> JSON of function and arguments)
-- ARGV[1] job id, ARGV[2] record, ARGV[3] failure time (ms), ARGV[4] how many to keep,
-- ARGV[5] function and arguments, '' when the job cannot be retried
-- Reply: how many older failed jobs were let go.
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
else
  redis.call('HDEL', KEYS[3], ARGV[1])
end
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if excess <= 0 then
  return 0
end
for _, old in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess - 1)) do
  redis.call('HDEL', KEYS[2], old)
  redis.call('HDEL', KEYS[3], old)
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
return excess
