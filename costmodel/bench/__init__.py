"""Benchmarks of the core: each measures one speed figure and returns it as tables, side by side
with the target and the figures it is compared with (``costmodel bench NAME`` prints them).

    analyze   warm ``analyze`` configurations per second, with and without reading the table
    startup   wall time of one CLI query from process start, beside Python's own start-up
    sweep     a 1,000,000-point ``sweep`` against a Python loop of ``decode_step``

They are measurements, not tests: the figures depend on the machine and on what else runs on it.
"""
