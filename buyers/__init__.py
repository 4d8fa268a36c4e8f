"""Buyers synced from a spreadsheet."""
