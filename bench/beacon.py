"""Beacon g_variants queries over ≥10 million genotype rows at one node, and VCF import.

    python bench/beacon.py [--samples 520] [--variants 100000] [--queries 200]

Writes a synthetic multi-sample VCF (GRCh38, SnpEff-style ANN annotations, ~20% carriers
per variant, so 520 x 100,000 gives ~10.4 million stored genotype rows), imports it with
`oncofed node ingest vcf` code (import throughput in variants/s and genotype rows/s, next
to `bcftools view` reading and re-encoding the same file as a reference when bcftools is
installed), then times Beacon queries through the node's engine (what the HTTP route and
the hub's task handler call): sequence queries at one position, 100 kb range queries and
gene queries, each at count granularity, plus record-level range queries (first page of 10
with case-level data). Target: p95 ≤ 50 ms per query. Results to bench/results/beacon.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import machine  # bench/measure.py
from oncofed import __version__
from oncofed.node.admin import init_node
from oncofed.node.beacon import BeaconRequest, engine_for
from oncofed.node.context import NodeContext
from oncofed.node.ingest.common import NodeTarget
from oncofed.node.ingest.vcf import ingest_vcf
from oncofed.node.policy import load_policy, write_policy
from oncofed.settings import load_node_settings, save_settings

TARGET_P95_MS = 50.0
CHROMS = [(str(c), 248_000_000 - 9_000_000 * (c - 1)) for c in range(1, 23)]
RESULTS = Path(__file__).parent / "results" / "beacon.json"


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "p50_ms": round(pct(50), 2),
        "p95_ms": round(pct(95), 2),
        "max_ms": round(ordered[-1], 2),
        "n": len(ordered),
    }


def write_vcf(path: Path, samples: int, variants: int, seed: int) -> dict[str, Any]:
    """A bgzip-free gzipped VCF (cyvcf2 reads both); returns what the queries need."""
    rng = random.Random(seed)
    genes = [f"GENE{i:04d}" for i in range(2000)]
    per_chrom = variants // len(CHROMS)
    positions: list[tuple[str, int, str, str]] = []
    rows = 0
    names = [f"BENCH{i:05d}-T1" for i in range(samples)]
    het, hom, ref = "0/1", "1/1", "0/0"
    with gzip.open(path, "wt", compresslevel=1) as fh:
        fh.write("##fileformat=VCFv4.2\n##reference=GRCh38\n")
        for chrom, length in CHROMS:
            fh.write(f"##contig=<ID=chr{chrom},length={length},assembly=GRCh38>\n")
        fh.write(
            '##INFO=<ID=ANN,Number=.,Type=String,Description="Functional annotations: '
            "'Allele | Annotation | Annotation_Impact | Gene_Name | Gene_ID | Feature_Type | "
            "Feature_ID | Transcript_BioType | Rank | HGVS.c | HGVS.p | cDNA.pos / cDNA.length"
            " | CDS.pos / CDS.length | AA.pos / AA.length | Distance | ERRORS / WARNINGS / "
            "INFO'\">\n"
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        )
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names))
        fh.write("\n")
        for ci, (chrom, length) in enumerate(CHROMS):
            step = (length - 20_000) // per_chrom
            for k in range(per_chrom):
                pos = 10_000 + k * step + rng.randrange(step // 2)
                r, a = rng.sample("ACGT", 2)
                gene = genes[min(len(genes) - 1, (ci * per_chrom + k) * len(genes) // variants)]
                freq = rng.choice((0.05, 0.1, 0.2, 0.3, 0.35))
                gts = []
                for _ in range(samples):
                    x = rng.random()
                    gts.append(hom if x < freq * freq else het if x < freq else ref)
                rows += sum(1 for g in gts if g != ref)
                ann = f"{a}|missense_variant|MODERATE|{gene}|{gene}|transcript|T|protein_coding"
                fh.write(f"chr{chrom}\t{pos}\t.\t{r}\t{a}\t.\tPASS\tANN={ann}||||||||\tGT\t")
                fh.write("\t".join(gts))
                fh.write("\n")
                positions.append((chrom, pos, r, a))
    return {"positions": positions, "genes": genes, "genotype_rows": rows, "names": names}


def bcftools_reference(path: Path, out: Path) -> dict[str, Any] | None:
    exe = shutil.which("bcftools")
    if exe is None:
        return None
    started = time.perf_counter()
    subprocess.run([exe, "view", "-Ob", "-o", str(out), str(path)], check=True)
    seconds = time.perf_counter() - started
    return {"tool": "bcftools view -Ob (read + BCF encode)", "seconds": round(seconds, 2)}


def time_queries(engine: Any, kind: str, requests: list[dict[str, Any]], granted: set[str]
                 ) -> dict[str, float]:  # fmt: skip
    samples = []
    for body in requests:
        req = BeaconRequest.parse(body)
        started = time.perf_counter()
        doc = engine.query("g_variants", req, granted)
        samples.append((time.perf_counter() - started) * 1000)
        assert "responseSummary" in doc, (kind, doc)
    return percentiles(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=520)
    ap.add_argument("--variants", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--store-threads", type=int, default=1, help="node.toml store_threads")
    ap.add_argument("--keep", type=Path, default=None, help="keep the work folder here")
    args = ap.parse_args()
    measured_on = machine()
    work = Path(args.keep or tempfile.mkdtemp(prefix="oncofed-bench-beacon-"))
    work.mkdir(parents=True, exist_ok=True)
    vcf = work / "bench.vcf.gz"
    started = time.perf_counter()
    facts = write_vcf(vcf, args.samples, args.variants, args.seed)
    print(f"wrote {vcf} ({vcf.stat().st_size / 1e6:.0f} MB, {facts['genotype_rows']:,} "
          f"non-reference genotypes) in {time.perf_counter() - started:.0f} s")  # fmt: skip
    reference = bcftools_reference(vcf, work / "bench.bcf")
    node = work / "node"
    if node.exists():
        shutil.rmtree(node)
    init_node(node, "bench", "bench")
    settings = load_node_settings(node)
    settings.store_threads = args.store_threads  # a node sharing few cores answers faster
    save_settings(settings)
    # The benchmark times queries, not the per-researcher limiter: one caller asks them all.
    policy_path = settings.resolve(settings.policy_file)
    policy = load_policy(policy_path)
    unlimited = {"rate_limit_per_minute": 1_000_000, "daily_budget": 1e9}
    disclosure = policy.disclosure.model_copy(update=unlimited)
    write_policy(policy_path, policy.model_copy(update={"disclosure": disclosure}))
    target = NodeTarget.open(node)
    started = time.perf_counter()
    report = ingest_vcf([vcf], target, "bench", access_level="registered")
    seconds = time.perf_counter() - started
    with target.store.reading() as con:
        row = con.execute("SELECT count(*) FROM variant_call").fetchone()
    calls = int(row[0]) if row else 0
    target.close()
    assert report.files[0].status == "ingested", report.files[0].detail
    print(f"imported {args.variants:,} variants, {calls:,} genotype rows in {seconds:.0f} s")

    ctx = NodeContext.open(load_node_settings(node))
    engine = engine_for(ctx)
    rng = random.Random(args.seed + 1)
    n = args.queries
    picks = [rng.choice(facts["positions"]) for _ in range(n)]
    position = [{"query": {"requestedGranularity": "count", "requestParameters": {
        "referenceName": c, "start": [p - 1], "referenceBases": r, "alternateBases": a,
        "assemblyId": "GRCh38"}}} for c, p, r, a in picks]  # fmt: skip
    ranges = []
    for c, p, _, _ in (rng.choice(facts["positions"]) for _ in range(n)):
        ranges.append({"query": {"requestedGranularity": "count", "requestParameters": {
            "referenceName": c, "start": [p - 50_000], "end": [p + 50_000]}}})  # fmt: skip
    genes = [{"query": {"requestedGranularity": "count",
                        "requestParameters": {"geneId": rng.choice(facts["genes"])}}}
             for _ in range(n)]  # fmt: skip
    records = [{**r, "query": {**r["query"], "requestedGranularity": "record",
                               "pagination": {"limit": 10}}} for r in ranges[: n // 2]]  # fmt: skip
    for warm in (position[:5], genes[:5]):  # first queries open cursors
        time_queries(engine, "warm-up", warm, set())
    results = {
        "position": time_queries(engine, "position", position, set()),
        "range_100kb": time_queries(engine, "range", ranges, set()),
        "gene": time_queries(engine, "gene", genes, set()),
        "range_100kb_record_page10": time_queries(engine, "record", records, {"bench"}),
    }
    ctx.close()
    worst = max(r["p95_ms"] for r in results.values())
    out = {
        "benchmark": "beacon g_variants at one node",
        "command": f"python bench/beacon.py --samples {args.samples} --variants "
        f"{args.variants} --queries {args.queries} --store-threads {args.store_threads}",
        "version": __version__,
        "machine": measured_on,
        "node": {"store_threads": args.store_threads},
        "data": {
            "samples": args.samples,
            "variants": args.variants,
            "genotype_rows": calls,
            "vcf_mb": round(vcf.stat().st_size / 1e6, 1),
        },
        "import": {
            "seconds": round(seconds, 1),
            "variants_per_s": round(args.variants / seconds),
            "genotype_rows_per_s": round(calls / seconds),
            "reference": reference,
        },
        "queries": results,
        "target_p95_ms": TARGET_P95_MS,
        "meets_target": worst <= TARGET_P95_MS,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
