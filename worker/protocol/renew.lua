-- Renew the leases of the claims a worker holds, and only those.
-- KEYS: claims...
-- ARGV: lease_ms, held...
-- REPLY: kept
-- claims: arq:in-progress:<id> of each job; held: for each, what its claim holds while
-- this worker has it. kept: for each, 1 when its lease was renewed, 0 when the claim
-- holds anything else (another worker took the job over) or is gone.
local kept = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i + 1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    kept[i] = 1
  else
    kept[i] = 0
  end
end
return kept
