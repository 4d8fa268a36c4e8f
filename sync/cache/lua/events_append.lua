-- Append one change event to a stream, once per version of a row (DESIGN I3, I7).
-- KEYS[1] the stream; KEYS[2] the hash of the last version appended per row (same hash tag,
-- so both keys live in one Redis Cluster slot). ARGV[1] the row ("label:pk"); ARGV[2] its
-- version; ARGV[3] approximate MAXLEN of the stream; ARGV[4..] the event's field/value pairs.
-- A version not newer than the last one appended (a replay of a write-through that already
-- appended, or an older state arriving late) appends nothing: no duplicates, never backwards.
local last = redis.call('HGET', KEYS[2], ARGV[1])
if last and tonumber(last) >= tonumber(ARGV[2]) then
  -- Rewrite the same value: a replicated no-op, so that a WAIT after this script also covers
  -- the append that made it a no-op (see cas_write.lua).
  redis.call('HSET', KEYS[2], ARGV[1], last)
  return false
end
-- XADD first: a script that fails midway keeps its earlier writes, and a version recorded
-- without its entry would make replay skip an event that was never appended.
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return id
