"""How long `oncofed` takes to start: `--help`, and a search up to its first request.

    python bench/cli_start.py [--repeat 15]

Each run is a fresh process (`python -m oncofed ...`), as a user types it; both its wall
time and its CPU time are recorded (on a machine shared with other work, the wall time is
mostly waiting for a core). The search is
pointed at a closed local port, so the time is the command's own start-up and argument
handling up to the moment it would talk to the hub (the hub's answer is measured by
bench/search.py). Also records `python -c pass` (the interpreter's floor) and how long
`import oncofed.cli` takes in-process (`-X importtime`'s view, as one number).

The target (issue 15): under 0.3 s for both, on this repository's 2-core machines.
Writes bench/results/cli_start.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import machine, summary

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = 0.3


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed once the socket is: nothing listens there


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run, in ms. On a shared machine the
    wall time includes waiting for a core; the CPU time is the command's own cost."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=False)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    info = machine()
    env = {**os.environ, "ONCOFED_CONFIG_DIR": tempfile.mkdtemp(prefix="oncofed-bench-")}
    port = closed_port()
    py = sys.executable
    cases = {
        "python -c pass": [py, "-c", "pass"],
        "oncofed --help": [py, "-m", "oncofed", "--help"],
        "oncofed search (to its first request)": [
            py,
            "-m",
            "oncofed",
            "search",
            "--hub",
            f"http://127.0.0.1:{port}",
            "--where",
            "diagnosis=lung cancer",
            "--timeout",
            "1",
        ],
        "import oncofed.cli": [py, "-c", "import oncofed.cli"],
    }
    for argv in cases.values():  # warm the file cache once
        timed(argv, env)
    results = {}
    for name, argv in cases.items():
        runs = [timed(argv, env) for _ in range(args.repeat)]
        results[name] = {
            "wall": summary([w for w, _ in runs]),
            "cpu": summary([c for _, c in runs]),
        }
        wall, cpu = results[name]["wall"], results[name]["cpu"]
        print(f"{name:<40} wall p50 {wall['p50_ms']:7.1f} ms   cpu p50 {cpu['p50_ms']:7.1f} ms")
    met = {
        name: {
            "wall": results[name]["wall"]["p50_ms"] <= TARGET_S * 1000,
            "cpu": results[name]["cpu"]["p50_ms"] <= TARGET_S * 1000,
        }
        for name in ("oncofed --help", "oncofed search (to its first request)")
    }
    out = {
        "benchmark": "cli_start",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": info,
        "load_average": os.getloadavg(),
        "repeat": args.repeat,
        "results": results,
        "target_ms": TARGET_S * 1000,
        "met_p50": met,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_start.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"target {TARGET_S * 1000:.0f} ms (p50): {met}; written to {RESULTS / 'cli_start.json'}")


if __name__ == "__main__":
    main()
