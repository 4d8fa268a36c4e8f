"""Sellers and their properties synced from a spreadsheet."""
