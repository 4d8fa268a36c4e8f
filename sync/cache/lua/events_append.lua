-- Append one change event to a stream, once per version of a row (DESIGN I3, I7).
-- KEYS[1] the stream; KEYS[2] the hash of the last version appended per row (same hash tag,
-- so both keys live in one Redis Cluster slot). ARGV[1] the row ("label:pk"); ARGV[2] its
-- version; ARGV[3] approximate MAXLEN of the stream; ARGV[4..] the event's field/value pairs.
-- A version not newer than the last one appended (a replay of a write-through that already
-- appended, or an older state arriving late) appends nothing: no duplicates, never backwards.
-- KEYS[3], when given: the data-loss marker (store.Marks; a single server only), and then
-- ARGV[1] is the token the writer captured before its read and the arguments above follow it:
-- a marker that is gone or other means Redis lost data since, and nothing is appended (the
-- writer re-enqueues the rows, and replay appends their newest state).
local a = 0
if KEYS[3] then
  if redis.call('GET', KEYS[3]) ~= ARGV[1] then
    return false
  end
  a = 1
end
local row, version = ARGV[1 + a], ARGV[2 + a]
local last = redis.call('HGET', KEYS[2], row)
if last and tonumber(last) >= tonumber(version) then
  -- Rewrite the same value: a replicated no-op, so that a WAIT after this script also covers
  -- the append that made it a no-op (see cas_write.lua).
  redis.call('HSET', KEYS[2], row, last)
  return false
end
-- XADD first: a script that fails midway keeps its earlier writes, and a version recorded
-- without its entry would make replay skip an event that was never appended.
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3 + a], '*', unpack(ARGV, 4 + a))
redis.call('HSET', KEYS[2], row, version)
return id
