"""Parts catalog: parts, stock and content (Tier 1, public API)."""
