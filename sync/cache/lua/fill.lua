-- Fill a missed row with what a reader read from PostgreSQL, only while that reader's lease
-- stands (DESIGN I2). Single key: Redis Cluster safe.
-- KEYS[1] the row's key; ARGV[1] the lease token read.lua handed out on the miss;
-- ARGV[2..6] as cas_write.lua's ARGV[1..5] (version, payload, key id, tombstone, TTL ms).
-- A lease that is gone means the key changed after the miss: a write landed (it removes the
-- lease), or Redis lost its data (FLUSHALL, a restart, the lease's expiry) — perhaps after a
-- newer write had landed and completed its intent. Either way the row this reader read may be
-- older than one Redis already had, and nothing would ever replace it: do not write.
-- Returns 1 when written, 0 otherwise.
if redis.call('HGET', KEYS[1], 'l') ~= ARGV[1] or redis.call('HEXISTS', KEYS[1], 'v') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'p', ARGV[3], 'k', ARGV[4], 't', ARGV[5])
redis.call('HDEL', KEYS[1], 'l')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
