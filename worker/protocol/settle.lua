-- Settle a job whose caller's deadline passed: withdraw it if no worker ever started it.
-- KEYS: job, in_progress, retry, result, queue, writes, reply, workers
-- ARGV: job_id, alive_ms
-- REPLY: state
-- retry: arq sets it when a run starts; writes: <queue>:writes (a caller of protocol
-- 1.3 and earlier passes seven keys, without it); reply: the reply list; alive_ms: how
-- recent (ms) a heartbeat makes a worker alive.
-- state: 'replied' (the reply is there to read), 'started' (running, or waiting
-- to be run again after its worker died: its outcome is open), 'finished' (done,
-- its reply already expired), 'withdrawn' (never started; now removed, so it can
-- never run) or 'withdrawn-no-worker' (the same, and no worker is alive).
local legacy = #KEYS == 7
local reply, workers = KEYS[7], KEYS[8]
if legacy then
  reply, workers = KEYS[6], KEYS[7]
end
if redis.call('EXISTS', reply) == 1 then
  return 'replied'
end
if redis.call('EXISTS', KEYS[2], KEYS[3]) > 0 then
  return 'started'
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return 'finished'
end
redis.call('ZREM', KEYS[5], ARGV[1])
if not legacy then
  redis.call('ZREM', KEYS[6], ARGV[1])
end
redis.call('DEL', KEYS[1])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if redis.call('ZCOUNT', workers, now - tonumber(ARGV[2]), '+inf') == 0 then
  return 'withdrawn-no-worker'
end
return 'withdrawn'
