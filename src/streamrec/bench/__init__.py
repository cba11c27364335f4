"""The bench stage: `bench()` records a few seconds per encoder setting on this machine and ranks them."""

from ._bench import BenchReport, bench

__all__ = ["BenchReport", "bench"]
