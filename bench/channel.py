"""Round trip of `node.info` through the task channel to 10 nodes, next to a direct call.

    python bench/channel.py [--nodes 10] [--tasks 200] [--concurrency 8]

A hub and N nodes run as separate processes on loopback (the same code path as a
deployment: signed tasks, long-polls, signed results, SQLite hub database). Each task goes
to all nodes and counts as done when every node's result is at the hub. The floor is a
direct HTTP GET of one node's `/info` (the same summary, no hub, no signatures). Results go
to bench/results/channel.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from measure import cpu_seconds, machine, summary  # bench/measure.py
from oncofed import __version__
from oncofed.client.hub import HubClient
from oncofed.local import LocalFederation

TARGET_P95_MS = 50.0


def cpu_per_process(pids: list[int]) -> list[float]:
    return [cpu_seconds(pid) for pid in pids]


def round_trip(client: HubClient) -> float:
    started = time.perf_counter()
    view = client.run("node.info", wait_time=30)
    elapsed = (time.perf_counter() - started) * 1000
    if not view["complete"] or any(t["status"] != "succeeded" for t in view["targets"]):
        raise RuntimeError(f"task incomplete: {view['counts']}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "channel.json"
    )
    args = parser.parse_args()
    measured_on = machine()

    with tempfile.TemporaryDirectory(prefix="oncofed-bench-") as tmp:
        fed = LocalFederation(Path(tmp))
        try:
            fed.init_hub("bench hub")
            fed.start_hub()
            for i in range(args.nodes):
                fed.add_node(f"node-{i + 1:02d}", f"p{i + 1}")
            with fed.admin() as client:
                for _ in range(10):  # warm-up: connections, caches
                    round_trip(client)
                pids = [p.proc.pid for p in (fed.hub, *fed.nodes.values()) if p.proc]
                cpu_before = cpu_per_process(pids)
                sequential = [round_trip(client) for _ in range(args.tasks)]
                cpu_after = cpu_per_process(pids)

                started = time.perf_counter()
                with ThreadPoolExecutor(args.concurrency) as pool:
                    clients = [fed.admin() for _ in range(args.concurrency)]
                    concurrent = list(
                        pool.map(lambda i: round_trip(clients[i % len(clients)]), range(args.tasks))
                    )
                wall = time.perf_counter() - started

            node = next(iter(fed.nodes.values()))
            with httpx.Client(base_url=node.url) as direct:
                for _ in range(10):
                    direct.get("/info").raise_for_status()
                floor = []
                for _ in range(args.tasks):
                    t0 = time.perf_counter()
                    direct.get("/info").raise_for_status()
                    floor.append((time.perf_counter() - t0) * 1000)
        finally:
            fed.stop()

    seq = summary(sequential)
    cpu = [(b - a) * 1000 / args.tasks for a, b in zip(cpu_before, cpu_after, strict=True)]
    result = {
        "benchmark": "channel",
        "oncofed_version": __version__,
        "machine": measured_on,
        "nodes": args.nodes,
        "tasks": args.tasks,
        "hub_database": "sqlite",
        "task_channel_sequential": {
            **seq,
            "tasks_per_s": round(1000 / statistics.fmean(sequential), 1),
            # CPU per task (user + system, from /proc) during the sequential run.
            **(
                {
                    "hub_cpu_ms_per_task": round(cpu[0], 2),
                    "node_cpu_ms_per_task_mean": round(statistics.fmean(cpu[1:]), 2),
                }
                if len(cpu) > 1
                else {}
            ),
        },
        "task_channel_concurrent": {
            **summary(concurrent),
            "concurrency": args.concurrency,
            "tasks_per_s": round(args.tasks / wall, 1),
        },
        "direct_http_one_node_floor": {
            **summary(floor),
            "requests_per_s": round(1000 / statistics.fmean(floor), 1),
        },
        "target": {"p95_ms": TARGET_P95_MS, "met": seq["p95_ms"] <= TARGET_P95_MS},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
