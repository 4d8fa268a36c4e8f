"""The cache layer: versioned write-through on commit, the outbox, replay, cache-first reads.

Invariants owned here: I1 PostgreSQL is the truth (Redis failures never reach a
writer or reader), I2 database-assigned versions and compare-and-set in Redis, I3 the
transactional outbox, I4 nothing reaches Redis before commit, I7 idempotent replay, I9 no stale
reads after an outage (the fence).
"""
