-- Keep one failed job of arq's own path, and only the last `keep` of them.
-- KEYS: failed, records, jobs, kinds
-- ARGV: job_id, record, failed_ms, keep, job
-- REPLY: let_go
-- See keep_failed (_failed.lua) for the keys; let_go: how many older failed
-- jobs were let go.
return keep_failed(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
  ARGV[5])
