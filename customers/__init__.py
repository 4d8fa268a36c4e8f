"""Customers (Tier 3, PII) and orders (Tier 2, encrypted in Redis)."""
