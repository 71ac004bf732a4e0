-- Enqueue one arq job unless its id is already queued or answered.
-- KEYS[1] job key (arq:job:<id>), KEYS[2] result key (arq:result:<id>),
-- KEYS[3] queue (sorted set), KEYS[4] the queue's wake-up list
-- ARGV[1] job id, ARGV[2] payload (JSON), ARGV[3] score (ms), ARGV[4] job expiry (ms)
-- Reply: 1 enqueued; 0 the id was already queued or answered and nothing changed.
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then
    return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
-- One token is enough: a worker that wakes takes every ready job it has room for.
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, 0)
redis.call('PEXPIRE', KEYS[4], ARGV[4])
return 1
