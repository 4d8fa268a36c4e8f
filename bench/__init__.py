"""Benchmarks: one script per performance goal, each prints a table of ratios (``./dev bench``).

They are scripts, not tests: nothing here asserts on a timing. ``bench.harness`` holds what they
share (their own embedded servers, interleaved timing, the table).
"""
