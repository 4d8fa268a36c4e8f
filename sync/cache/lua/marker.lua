-- The data-loss marker (store.Marks): its token, set to ARGV[1] when there is none (Redis
-- lost its data, or never had one). What SET NX GET does on Redis 7, for Redis 6.2 too.
-- KEYS[1] the marker key; ARGV[1] a new random token. Returns the old token, or nil when
-- ARGV[1] is the marker now.
local token = redis.call('GET', KEYS[1])
if token then
  return token
end
redis.call('SET', KEYS[1], ARGV[1])
return false
