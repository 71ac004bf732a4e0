-- Release a maintenance run's lock if this run still holds it.
-- KEYS: lock
-- ARGV: token
-- REPLY: released
-- token: what the run took the lock with. released = 1, or 0 when another run
-- holds it (or it expired) and it was left alone.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
