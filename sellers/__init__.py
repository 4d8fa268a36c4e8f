"""Sellers and their properties synced from a spreadsheet (seed 002)."""
