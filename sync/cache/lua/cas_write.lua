-- Versioned compare-and-set of one cached row (DESIGN I2). Single key: Redis Cluster safe.
-- KEYS[1] the row's key
-- ARGV[1] version, ARGV[2] payload, ARGV[3] key id, ARGV[4] tombstone "1"/"0", ARGV[5] TTL ms
-- Returns 1 when written, 0 when the stored version is already equal or newer.
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'p', ARGV[2], 'k', ARGV[3], 't', ARGV[4])
-- a fill lease (field l) ends with the write it was taken for
redis.call('HDEL', KEYS[1], 'l')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
