"""The sync engine: versioned write-through to Redis, the outbox, replay, reads, verification."""
