"""Benchmarks for cairn: never asserted in tests; results go to benchmarks/RESULTS.md.

Start with README.md beside this file. ``engine_bench`` measures the storage engine
against plain-Python floors on the same disk; ``_timing``, ``_floors`` and ``_report``
hold the timing loops, the floors and the report helpers that benchmarks share.
"""
