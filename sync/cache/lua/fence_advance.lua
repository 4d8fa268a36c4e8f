-- Record that replay has drained a model's failures up to an outage epoch (DESIGN I9).
-- KEYS[1] the fence hash; ARGV[1] model label; ARGV[2] epoch. Only ever moves forward.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and tonumber(current) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
