-- count: an owner's live records in O(log N).
-- KEYS: idx, exp
-- ARGV: (none)
-- REPLY: live
-- Records in the index less those whose expiry has passed.

return redis.call('ZCARD', KEYS[1]) - redis.call('ZCOUNT', KEYS[2], '-inf', now_ms())
