-- Replace a cached ciphertext with the same row state under a newer key (key rotation).
-- KEYS[1] the row's key; ARGV[1] expected version, ARGV[2] expected key id,
-- ARGV[3] new payload, ARGV[4] new key id. Only if nothing was written meanwhile.
local h = redis.call('HMGET', KEYS[1], 'v', 'k')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'p', ARGV[3], 'k', ARGV[4])
return 1
