-- The automatic warm's progress (sync/cache/autowarm.py), recorded only by the warm that holds
-- the lock and only for the data it started on. KEYS share one hash tag (cluster safe).
-- KEYS[1] the state hash, KEYS[2] the lock; ARGV[1] the lock's owner token, ARGV[2] the
-- markers the warm started on, ARGV[3] the lock's new lifetime in ms, ARGV[4..] field, value.
-- Returns 1 when recorded; 0 when the lock or the state is gone (another warm took over, or
-- Redis lost its data again: the warm stops, and the next check starts afresh).
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
