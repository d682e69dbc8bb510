"""Federated cohort search end to end, next to one node's own work for the same query.

    python bench/search.py [--nodes 10] [--patients 100000] [--repeat 30]

A hub and N nodes run as processes on loopback, each node holding `--patients` synthetic
patients (about ten image series each, a tumour sequenced for most) loaded straight into
its DuckDB store. Each query of a realistic set (2 to 6 criteria, with and without variant
conditions) is sent through `POST /api/search`, waiting for every node. Two floors, each
run in this process on a copy of one node's store: the issue's, the compiled counting SQL
run directly on the DuckDB store, and a stricter one, the node's own work for the query as
it is done now (validation, in-memory counting, disclosure control). The overhead (end to
end p50 minus floor p50) is checked against the target over both. Also measured: the same
searches sent to one node only (the hub and channel with the cores not shared by ten
nodes). Results go to bench/results/search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from measure import cpu_seconds, machine, pct, summary  # bench/measure.py
from oncofed import __version__
from oncofed.local import LocalFederation
from oncofed.node.search import answer_search
from oncofed.node.state import state_engine
from oncofed.node.store import NodeStore
from oncofed.privacy import DisclosurePolicy
from oncofed.privacy.ledger import PrivacyLedger
from oncofed.query import parse_query
from oncofed.query.counts import count_matches
from oncofed.security.pseudonym import load_secret
from oncofed.settings import load_hub_settings, load_node_settings, save_settings
from oncofed.synth import iter_patients
from oncofed.synth.load import load_records

TARGET_P95_MS = 150.0
TARGET_OVERHEAD_MS = 30.0
POLICY = """allowed_tasks = ["node.info", "search.count"]
[disclosure]
rate_limit_per_minute = 1000000
daily_budget = 1000000.0
"""


def c(key: str, value: object, type_: str = "EQUALS") -> dict[str, object]:
    return {"key": key, "type": type_, "value": value}


def eucaim(*conditions: dict[str, object]) -> dict[str, object]:
    """EUCAIM's shape: OR -> AND -> one OR group per criterion."""
    return {
        "operand": "OR",
        "children": [
            {
                "operand": "AND",
                "children": [{"operand": "OR", "children": [cond]} for cond in conditions],
            }
        ],
    }


QUERIES = {
    "lung_ct": eucaim(c("SNOMEDCT439401001", "SNOMEDCT363358000"), c("RID10311", "RID10321")),
    "breast_female_age_mg": eucaim(
        c("SNOMEDCT439401001", "SNOMEDCT254837009"),
        c("SNOMEDCT263495000", "SNOMEDCT248152002"),
        c("SNOMEDCT423493009", {"min": 40, "max": 70}, "BETWEEN"),
        c("RID10311", "RID10357"),
    ),
    "prostate_mr_siemens_stage": eucaim(
        c("SNOMEDCT439401001", "SNOMEDCT399068003"),
        c("RID10311", "RID10312"),
        c("SNOMEDCT123037004", "SNOMEDCT41216001"),
        c("C25392", "C200140"),
        c("oncofed:stage_group", "III"),
    ),
    "lung_egfr": eucaim(c("SNOMEDCT439401001", "SNOMEDCT363358000"), c("oncofed:gene", "EGFR")),
    "colon_kras_ct_age_alive": eucaim(
        c("SNOMEDCT439401001", "SNOMEDCT363406005"),
        c("oncofed:gene", "KRAS"),
        c("RID10311", "RID10321"),
        c("SNOMEDCT123037004", "SNOMEDCT818981001"),
        c("SNOMEDCT423493009", {"min": 50, "max": 80}, "BETWEEN"),
        c("oncofed:vital_status", "alive"),
    ),
    "variant_braf_v600e_melanoma": eucaim(
        c("oncofed:variant", "7:140753336:A:T"), c("SNOMEDCT439401001", "SNOMEDCT372244006")
    ),
}


def fill(node_dir: str, index: int, patients: int) -> int:
    settings = load_node_settings(Path(node_dir))
    store = NodeStore(settings.resolve(settings.store_file))
    try:
        return load_records(
            store,
            iter_patients(index, patients, seed=11),
            load_secret(settings.resolve(settings.secret_file)),
            f"{settings.provider_id}-cohort",
            f"{settings.name} cohort",
        )
    finally:
        store.close()


def result_cpu(hub_cpu: float, node_cpu: float, searches: int) -> dict[str, float]:
    return {
        "hub": round(hub_cpu * 1000 / searches, 2),
        "nodes_total": round(node_cpu * 1000 / searches, 2),
    }


def colocation(
    cpu_ms: dict[str, float], floor_cpu: dict[str, list[float]], nodes: int
) -> dict[str, object]:
    """What sharing the machine's cores costs, derived from the measurements above.

    The floor is one node's work alone; a search makes every node do it at once, on the
    same cores as the hub. These bounds say how much of the end-to-end time no hub or
    channel could remove on this machine.
    """
    cpus = os.cpu_count() or 1
    one = pct([x for v in floor_cpu.values() for x in v], 50)
    return {
        "cpus": cpus,
        "all_node_floors_cpu_ms": round(one * nodes, 2),
        "all_node_floors_on_these_cpus_ms": round(one * nodes / cpus, 2),
        "cpu_per_search_on_these_cpus_ms": round((cpu_ms["hub"] + cpu_ms["nodes_total"]) / cpus, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the federation here (default: a temporary directory)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "search.json"
    )
    args = parser.parse_args()
    measured_on = machine()

    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="oncofed-bench-search-"))
    fed = LocalFederation(tmp)
    try:
        fed.init_hub("bench hub")
        hub_settings = load_hub_settings(fed.hub.directory)
        hub_settings.search_rate_per_minute = 1_000_000
        hub_settings.search_daily_limit = 1_000_000
        save_settings(hub_settings)
        fed.start_hub()
        names = [f"node-{i + 1:02d}" for i in range(args.nodes)]
        for i, name in enumerate(names):
            fed.add_node(name, f"p{i + 1}", start=False)
            (fed.nodes[name].directory / "policy.toml").write_text(POLICY)
            # Many nodes share few cores: one DuckDB thread each (parallel operators only
            # add contention for queries this small).
            node_settings = load_node_settings(fed.nodes[name].directory)
            node_settings.store_threads = 1
            save_settings(node_settings)
        started = time.perf_counter()
        with ProcessPoolExecutor(max(1, (os.cpu_count() or 2))) as pool:
            loaded = list(
                pool.map(
                    fill,
                    [str(fed.nodes[n].directory) for n in names],
                    range(args.nodes),
                    [args.patients] * args.nodes,
                )
            )
        load_seconds = time.perf_counter() - started
        first = load_node_settings(fed.nodes[names[0]].directory)
        floor_store_path = tmp / "floor.duckdb"
        shutil.copy(first.resolve(first.store_file), floor_store_path)
        sizes = NodeStore(floor_store_path, threads=1)
        with sizes.reading() as con:
            series = int(con.execute("SELECT count(*) FROM imaging_series").fetchall()[0][0])
            calls = int(con.execute("SELECT count(*) FROM variant_call").fetchall()[0][0])
        sizes.close()
        for name in names:
            fed.start_node(name)

        end_to_end: dict[str, list[float]] = {}
        single: dict[str, list[float]] = {}
        answers: dict[str, int] = {}
        assert fed.hub.proc is not None
        hub_pid = fed.hub.proc.pid
        node_pids = [p.pid for n in names if (p := fed.nodes[n].proc) is not None]
        hub_cpu = node_cpu = 0.0
        load_before = os.getloadavg()
        with fed.admin() as client:
            for label, ast in QUERIES.items():
                client.search(ast, timeout_seconds=60)  # warm-up: draws and caches noise
                samples = []
                hub_cpu -= cpu_seconds(hub_pid)
                node_cpu -= sum(cpu_seconds(pid) for pid in node_pids)
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    result = client.search(ast, timeout_seconds=60)
                    samples.append((time.perf_counter() - t0) * 1000)
                    if result["nodes"]["answered"] != args.nodes:
                        raise RuntimeError(f"{label}: {result['nodes']['statuses']}")
                hub_cpu += cpu_seconds(hub_pid)
                node_cpu += sum(cpu_seconds(pid) for pid in node_pids)
                end_to_end[label] = samples
                answers[label] = result["total"]["subjects"]["min"]
            load_after = os.getloadavg()
            # The same searches addressed to one node: the hub and channel with the cores
            # free, i.e. what they add in a deployment where nodes have machines of their own.
            for label, ast in QUERIES.items():
                samples = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    client.search(ast, nodes=[names[0]], timeout_seconds=60)
                    samples.append((time.perf_counter() - t0) * 1000)
                single[label] = samples

        # The floor: the node's own work for the same query on a copy of one node's store.
        # Set up as a running node is: one DuckDB thread, its state engine (SQLite WAL) and a
        # long-lived privacy ledger.
        store = NodeStore(floor_store_path, threads=1)
        state = state_engine(tmp / "floor-state.db")
        ledger = PrivacyLedger(state)
        policy = DisclosurePolicy(rate_limit_per_minute=1_000_000, daily_budget=1e6)
        floor: dict[str, list[float]] = {}
        floor_cpu: dict[str, list[float]] = {}
        floor_sql: dict[str, list[float]] = {}
        for label, ast in QUERIES.items():
            answer_search(store, ast, "bench", policy, state, "floor", ledger=ledger)
            samples, cpu = [], []
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                answer_search(store, ast, "bench", policy, state, "floor", ledger=ledger)
                samples.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            floor[label] = samples
            floor_cpu[label] = cpu
            # The floor: the compiled counting SQL run directly on the DuckDB store
            # (what the node ran before it counted in memory).
            op = parse_query(ast)
            with store.reading() as con:
                count_matches(con, op)
                samples = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    count_matches(con, op)
                    samples.append((time.perf_counter() - t0) * 1000)
            floor_sql[label] = samples
        store.close()
    finally:
        fed.stop()
        if args.workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)

    all_e2e = [x for v in end_to_end.values() for x in v]
    all_floor = [x for v in floor.values() for x in v]
    per_query = {
        label: {
            "criteria": len(QUERIES[label]["children"][0]["children"]),  # type: ignore[index]
            "matching_patients_total": answers[label],
            "end_to_end": summary(end_to_end[label]),
            "floor_one_node": summary(floor[label]),
            "floor_one_node_cpu": summary(floor_cpu[label]),
            "overhead_p50_ms": round(pct(end_to_end[label], 50) - pct(floor[label], 50), 2),
            "single_node_end_to_end": summary(single[label]),
            "floor_compiled_sql": summary(floor_sql[label]),
        }
        for label in QUERIES
    }
    overall_e2e, overall_floor = summary(all_e2e), summary(all_floor)
    searches = len(all_e2e)
    overhead = round(overall_e2e["p50_ms"] - overall_floor["p50_ms"], 2)
    overall_single = summary([x for v in single.values() for x in v])
    overall_sql = summary([x for v in floor_sql.values() for x in v])
    single_overhead = round(overall_single["p50_ms"] - overall_floor["p50_ms"], 2)
    sql_overhead = round(overall_e2e["p50_ms"] - overall_sql["p50_ms"], 2)
    result = {
        "benchmark": "search",
        "oncofed_version": __version__,
        "machine": measured_on,
        "nodes": args.nodes,
        "patients_per_node": args.patients,
        "patients_loaded": sum(loaded),
        "load_seconds": round(load_seconds, 1),
        "image_series_per_node": series,
        "variant_calls_per_node": calls,
        "repeat": args.repeat,
        "end_to_end": overall_e2e,
        "floor_one_node": overall_floor,
        "floor_one_node_cpu": summary([x for v in floor_cpu.values() for x in v]),
        # CPU burnt per measured search (warm-ups excluded), hub and all nodes together.
        "cpu_ms_per_search": result_cpu(hub_cpu, node_cpu, searches),
        "load_average": {"before": load_before, "after": load_after},
        # Overhead over the floor, read two ways (both are targeted below): against the
        # issue's floor, the compiled counting SQL run directly on one node's store, and,
        # stricter, against what a node now does instead (in-memory counting, 6-10 times
        # cheaper than that SQL), which leaves the other nine nodes' work on the shared
        # cores inside the "overhead".
        "overhead_p50_ms": overhead,
        "floor_compiled_sql": overall_sql,
        "overhead_over_compiled_sql_p50_ms": sql_overhead,
        # The same searches sent to one node: the hub and channel with the cores not
        # shared by ten nodes (what a deployment where nodes have machines of their own pays).
        "single_node_end_to_end": overall_single,
        "single_node_overhead_p50_ms": single_overhead,
        "colocation": colocation(result_cpu(hub_cpu, node_cpu, searches), floor_cpu, args.nodes),
        "per_query": per_query,
        "target": {
            "p95_ms": TARGET_P95_MS,
            "p95_met": overall_e2e["p95_ms"] <= TARGET_P95_MS,
            "overhead_ms": TARGET_OVERHEAD_MS,
            "overhead_over_compiled_sql_met": sql_overhead <= TARGET_OVERHEAD_MS,
            "overhead_over_in_memory_floor_met": overhead <= TARGET_OVERHEAD_MS,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
