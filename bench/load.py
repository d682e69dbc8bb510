"""Concurrent researchers against one hub: SQLite, PostgreSQL with 1 and with N workers.

    python bench/load.py [--researchers 20] [--searches 10] [--patients 2000] [--workers 4]

For each configuration a hub and three nodes (synthetic patients loaded straight into their
stores) run as processes on loopback; `--researchers` accounts each send `--searches`
searches through `POST /api/search` at the same time, every one on a connection of its own
(so that with several workers the requests spread over them while each node's stream is
held by one). Measured per configuration: p95 latency, searches per second, lost targets
(a target not answered in the end) and partial answers. PostgreSQL needs a server
(``ONCOFED_TEST_PG``, default postgresql://postgres@127.0.0.1:5432/postgres); each run
uses a database of its own and drops it. Results go to bench/results/load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from measure import machine, pct  # bench/measure.py
from oncofed import __version__
from oncofed.hub.admin import add_user, create_api_token
from oncofed.hub.db import make_engine
from oncofed.hub.models import TaskTarget
from oncofed.local import LocalFederation
from oncofed.settings import load_hub_settings, save_settings
from oncofed.synth.load import fill_node

PG_ADMIN_URL = os.environ.get("ONCOFED_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
POLICY = """allowed_tasks = ["node.info", "search.count"]
[disclosure]
rate_limit_per_minute = 1000000
daily_budget = 1000000.0
"""
SEX = "SNOMEDCT263495000"
AGE = "SNOMEDCT423493009"


def queries(n: int) -> list[dict[str, Any]]:
    """n distinct searches (sex and an age bound), as researchers would vary them."""
    out = []
    for i in range(n):
        sex = "SNOMEDCT248152002" if i % 2 else "SNOMEDCT248153007"
        out.append({"operand": "AND", "children": [
            {"key": SEX, "type": "EQUALS", "value": sex},
            {"key": AGE, "type": "BETWEEN", "value": {"min": 30 + 3 * i}}]})  # fmt: skip
    return out


def run(
    name: str, workdir: Path, database_url: str, workers: int, args: argparse.Namespace
) -> dict[str, Any]:
    fed = LocalFederation(workdir / name, database_url=database_url, hub_workers=workers)
    fed.init_hub("load hub")
    settings = load_hub_settings(fed.hub.directory)
    settings.search_rate_per_minute = 1000
    save_settings(settings)
    try:
        fed.start_hub()
        for i in range(3):
            node = f"node-{i + 1}"
            fed.add_node(node, f"p{i + 1}", start=False)
            (fed.nodes[node].directory / "policy.toml").write_text(POLICY)
            fill_node(fed.nodes[node].directory, i, args.patients)
            fed.start_node(node)
        engine = make_engine(settings.db_url)
        tokens = []
        for r in range(args.researchers):
            add_user(engine, f"r{r:02d}", ["researcher"])
            tokens.append(create_api_token(engine, f"r{r:02d}", name="load", days=1))
        asts = queries(args.searches)

        def researcher(token: str) -> list[tuple[float, dict[str, Any]]]:
            done = []
            for ast in asts:
                t0 = time.perf_counter()
                r = httpx.post(
                    f"{fed.hub.url}/api/search",
                    json={"ast": ast, "timeout_seconds": 30},
                    headers={"authorization": f"Bearer {token}"},
                    timeout=60,
                )
                done.append(((time.perf_counter() - t0) * 1000, r.json() if r.is_success else {}))
            return done

        started = time.perf_counter()
        with ThreadPoolExecutor(args.researchers) as pool:
            results = [x for batch in pool.map(researcher, tokens) for x in batch]
        elapsed = time.perf_counter() - started
        time.sleep(1)  # let the last results land
        with engine.connect() as con:
            statuses = con.execute(sa.select(TaskTarget.status)).scalars().all()
        engine.dispose()
        latencies = [ms for ms, _ in results]
        return {
            "name": name,
            "workers": workers,
            "database": "postgresql" if database_url else "sqlite",
            "searches": len(results),
            "p50_ms": pct(latencies, 50),
            "p95_ms": pct(latencies, 95),
            "searches_per_s": round(len(results) / elapsed, 1),
            "lost_targets": sum(1 for s in statuses if s != "succeeded"),
            "partial": sum(1 for _, body in results if not body or body.get("partial")),
        }
    finally:
        fed.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--researchers", type=int, default=20)
    parser.add_argument("--searches", type=int, default=10)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "load.json")
    args = parser.parse_args()
    measured_on = machine()
    workdir = Path(tempfile.mkdtemp(prefix="oncofed-bench-load-"))
    configs = [run("sqlite", workdir, "", 1, args)]
    import psycopg

    for workers in (1, args.workers):
        db = f"oncofed_load_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{db}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        try:
            configs.append(run(f"postgresql-{workers}", workdir, f"{base}/{db}", workers, args))
        finally:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as con:
                con.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    out = {
        "benchmark": "load",
        "version": __version__,
        "machine": measured_on,
        "cores": os.cpu_count(),
        "researchers": args.researchers,
        "searches_each": args.searches,
        "patients_per_node": args.patients,
        "nodes": 3,
        "configs": configs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(configs, indent=2))


if __name__ == "__main__":
    main()
