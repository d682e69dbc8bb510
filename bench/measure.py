"""What the benchmarks share: percentiles of latency samples and CPU time per process.

Imported as ``measure`` by the scripts in this folder (each runs as ``python bench/x.py``,
which puts the folder on the import path).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path


def pct(samples: list[float], p: float) -> float:
    """The p-th percentile (nearest rank), in the samples' unit, to 0.01."""
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 2)


def summary(samples: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 / mean of latencies in milliseconds."""
    return {
        "p50_ms": pct(samples, 50),
        "p95_ms": pct(samples, 95),
        "p99_ms": pct(samples, 99),
        "mean_ms": round(statistics.fmean(samples), 2),
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (0 where absent).

    Wall-clock latencies on a shared machine are noisy; the CPU the hub and the nodes burn
    per request is not, and tells where the time goes.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def python_speed() -> dict[str, float]:
    """How fast this machine runs plain Python now: a fixed loop, best of three, in ms.

    The machines these benchmarks run on differ from session to session by more than two
    times in single-core speed (the same loop took 0.5 s on one and 1.6 s on another), and
    so do the latencies. Recording this next to them lets two results be compared: a
    run whose latencies fell while this stayed put is faster code, not a faster machine.
    """
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(5_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return {"loop_5m_ms": round(best * 1000, 1)}


def machine() -> dict[str, object]:
    """The machine a result was measured on, with its Python speed (`python_speed`).

    Call it before starting the services under test, while the cores are quiet.
    """
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **python_speed(),
    }
