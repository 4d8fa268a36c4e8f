-- Read one cached row; on a miss, optionally hand out the fill lease (Meta-style leases).
-- KEYS[1] the row's key
-- ARGV[1] lease token ("" for a plain read), ARGV[2] lease TTL ms
-- Returns {1, version, payload, key id, tombstone} on a hit, {0} on a plain miss,
-- {2} when another reader holds the lease, {3} when this reader got it and should fill.
local h = redis.call('HMGET', KEYS[1], 'v', 'p', 'k', 't', 'l')
if h[1] then
  return {1, h[1], h[2], h[3], h[4]}
end
if ARGV[1] == '' then
  return {0}
end
if h[5] then
  return {2}
end
redis.call('HSET', KEYS[1], 'l', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {3}
