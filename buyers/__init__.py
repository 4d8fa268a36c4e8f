"""Buyers synced from a spreadsheet (seed 004)."""
