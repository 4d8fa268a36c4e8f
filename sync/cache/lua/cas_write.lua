-- Versioned compare-and-set of one cached row (DESIGN I2). Single key: Redis Cluster safe.
-- KEYS[1] the row's key
-- ARGV[1] version, ARGV[2] payload, ARGV[3] key id, ARGV[4] tombstone "1"/"0", ARGV[5] TTL ms,
-- ARGV[6] "1" to also replace an entry of the same version (verification's repair of a
-- corrupted entry; the same version means the same row state in PostgreSQL), ARGV[7] who
-- writes (w write-through, r replay, m warm, v verification, c console resync; empty: not
-- recorded) and ARGV[8] the writer's clock in ms: a write that lands records "<version>@<ms>" in field w<ARGV[7]>,
-- what ``sync_inspect`` shows as the key's last write-through / replay (sync/cache/inspect.py).
-- Returns 1 when written, 0 when the stored version is newer (or equal, without ARGV[6]).
local current = redis.call('HGET', KEYS[1], 'v')
if current then
  local stored, incoming = tonumber(current), tonumber(ARGV[1])
  if stored > incoming or (stored == incoming and ARGV[6] ~= '1') then
    -- Re-set the same TTL: a replicated no-op, so that a WAIT after this script also covers
    -- the newer write that made it a no-op (WAIT counts only this connection's own writes,
    -- and that write may have come from another client and not be replicated yet).
    local ttl = redis.call('PTTL', KEYS[1])
    if ttl > 0 then
      redis.call('PEXPIRE', KEYS[1], ttl)
    end
    return 0
  end
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'p', ARGV[2], 'k', ARGV[3], 't', ARGV[4])
-- a fill lease (field l) ends with the write it was taken for
redis.call('HDEL', KEYS[1], 'l')
if ARGV[7] and ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'w' .. ARGV[7], ARGV[1] .. '@' .. ARGV[8])
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
