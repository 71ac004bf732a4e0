-- Release a maintenance run's lock if this run still holds it.
-- KEYS[1] the lock, ARGV[1] the token the run took it with
-- Reply: 1 released, 0 held by another run (or expired) and left alone.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
