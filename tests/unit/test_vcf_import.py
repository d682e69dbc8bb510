"""VCF import (oncofed.node.ingest.vcf): genotypes to pseudonyms, annotations, ledger."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oncofed.node.ingest.common import NodeTarget
from oncofed.node.ingest.vcf import SampleMap, ingest_vcf, normalise_chrom, trim_alleles
from tests.clinical_fixtures import bff_assets, make_node, make_synth

ZYGOSITY = {"GENO:GENO_0000458": "heterozygous", "GENO:GENO_0000136": "homozygous"}


@pytest.fixture
def target(tmp_path: Path) -> NodeTarget:
    t = NodeTarget.open(make_node(tmp_path / "node"))
    yield t  # type: ignore[misc]
    t.close()


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth(tmp_path_factory.mktemp("synth"))


def test_1000_genomes_slice_matches_beacon_reference(target: NodeTarget) -> None:
    assets = bff_assets()
    vcf = assets / "test_1000G.norm.ann.dbnsfp.clinvar.cosmic.vcf.gz"
    with gzip.open(assets / "genomicVariationsVcf.json.gz") as fh:
        expected = json.loads(fh.read())
    report = ingest_vcf(
        [vcf], target, "g1k", SampleMap.from_options(r"^(?P<patient>.+)$"), "GRCh37"
    )
    assert report.files[0].status == "ingested", report.files[0].detail
    sample = {}
    with target.store.reading() as con:
        variants = {
            (r[0], r[1], r[2], r[3]): r
            for r in con.execute(
                "SELECT chrom, pos, ref, alt, variant_type, id FROM variant"
            ).fetchall()
        }
        calls: dict[str, set[tuple[str, str, str]]] = {}
        for vid, bs, gt, zyg in con.execute(
            "SELECT variant_id, biosample_id, genotype, zygosity FROM variant_call"
        ).fetchall():
            calls.setdefault(vid, set()).add((bs, gt, zyg))
        genes: dict[str, set[str]] = {}
        for vid, gene in con.execute("SELECT variant_id, gene FROM variant_gene").fetchall():
            genes.setdefault(vid, set()).add(gene)
    assert len(variants) == len(expected)
    for v in expected:
        pos = v["_position"]
        key = (
            normalise_chrom(pos["refseqId"]),
            pos["startInteger"] + 1,
            v["variation"]["referenceBases"],
            v["variation"]["alternateBases"],
        )
        row = variants[key]
        assert row[4] == v["variation"]["variantType"]
        vid = row[5]
        want = set()
        for c in v.get("caseLevelData", []):
            bs = sample.setdefault(
                c["biosampleId"], target.pseudonyms.of("sample", c["biosampleId"])
            )
            want.add((bs, c["zygosity"]["label"], ZYGOSITY[c["zygosity"]["id"]]))
        assert calls.get(vid, set()) == want, key
        assert genes.get(vid, set()) == {g for g in v["molecularAttributes"]["geneIds"] if g}, key


def test_synth_samples_link_to_patient_pseudonyms(synth: Path, target: NodeTarget) -> None:
    report = ingest_vcf([synth / "variants"], target)
    assert report.ingested == 1 and report.records > 0
    with target.store.reading() as con:
        rows = con.execute(
            "SELECT DISTINCT c.patient_id, b.sample_type FROM variant_call c "
            "JOIN biosample b ON b.id = c.biosample_id"
        ).fetchall()
        genes = {r[0] for r in con.execute("SELECT gene FROM variant").fetchall()}
    with gzip.open(next((synth / "variants").glob("*.vcf.gz")), "rt") as fh:
        header = next(line for line in fh if line.startswith("#CHROM"))
    names = header.strip().split("\t")[9:]
    pseudonyms = {target.pseudonyms.patient(n.rsplit("-T", 1)[0]) for n in names}
    assert rows and {r[0] for r in rows} <= pseudonyms
    assert {r[1] for r in rows} == {"tumour"}
    assert genes & {"KRAS", "EGFR", "BRAF", "TP53", "PIK3CA", "IDH1"}


def test_rerun_and_plain_vcf(synth: Path, target: NodeTarget, tmp_path: Path) -> None:
    gz = next((synth / "variants").glob("*.vcf.gz"))
    plain = tmp_path / "plain.vcf"
    with gzip.open(gz) as fh:
        plain.write_bytes(fh.read())
    first = ingest_vcf([plain], target)
    assert first.ingested == 1
    with target.store.reading() as con:
        before = con.execute("SELECT count(*) FROM variant_call").fetchone()
    again = ingest_vcf([plain], target)
    assert again.unchanged == 1
    with target.store.reading() as con:
        assert con.execute("SELECT count(*) FROM variant_call").fetchone() == before


def test_bad_record_rejects_file_atomically(target: NodeTarget, tmp_path: Path) -> None:
    vcf = tmp_path / "bad.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##reference=GRCh38\n##contig=<ID=chr1,length=1000>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP1-T1\n"
        "chr1\t100\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\n"
        "chr1\t200\t.\tA\tQQ\t.\tPASS\t.\tGT\t0/1\n"
    )
    report = ingest_vcf([vcf], target)
    outcome = report.files[0]
    assert outcome.status == "rejected"
    assert "record 2" in outcome.detail and "ALT" in outcome.detail
    with target.store.reading() as con:
        assert con.execute("SELECT count(*) FROM variant").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM variant_call").fetchone() == (0,)


def test_sample_map_csv(target: NodeTarget, tmp_path: Path) -> None:
    vcf = tmp_path / "s.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=7,length=1000>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tLIB001\tLIB002\n"
        "7\t100\t.\tA\tG,T\t.\tPASS\t.\tGT\t1/2\t1|1\n"
    )
    table = tmp_path / "samples.csv"
    table.write_text("sample,patient\nLIB001,MRN-1\nLIB002,MRN-2\n")
    report = ingest_vcf(
        [vcf], target, samples=SampleMap.from_options(table=table), assembly="GRCh38"
    )
    assert report.files[0].status == "ingested", report.files[0].detail
    with target.store.reading() as con:
        rows = set(
            con.execute(
                "SELECT v.alt, c.patient_id, c.genotype, c.zygosity FROM variant_call c "
                "JOIN variant v ON v.id = c.variant_id"
            ).fetchall()
        )
    p1, p2 = target.pseudonyms.patient("MRN-1"), target.pseudonyms.patient("MRN-2")
    assert rows == {
        ("G", p1, "1/2", "heterozygous"),
        ("T", p1, "1/2", "heterozygous"),
        ("G", p2, "1|1", "homozygous"),
    }


@given(
    left=st.text("ACGT", max_size=3),
    core_ref=st.text("ACGT", min_size=1, max_size=4),
    core_alt=st.text("ACGT", min_size=1, max_size=4),
    right=st.text("ACGT", max_size=3),
    pos=st.integers(1, 10**8),
)
def test_trimmed_alleles_are_minimal_and_equivalent(
    left: str, core_ref: str, core_alt: str, right: str, pos: int
) -> None:
    ref, alt = left + core_ref + right, left + core_alt + right
    if ref == alt:
        return
    p, r, a = trim_alleles(pos, ref, alt)
    # the same change: the trimmed pair, padded back with what was cut, is the original
    cut = p - pos
    assert ref[:cut] == alt[:cut]
    assert ref[:cut] + r + ref[cut + len(r) :] == ref
    assert alt[:cut] + a + alt[cut + len(a) :] == alt
    assert ref[cut + len(r) :] == alt[cut + len(a) :]
    # minimal: no shared base left at either end while both alleles are longer than one
    if len(r) > 1 and len(a) > 1:
        assert r[0] != a[0] and r[-1] != a[-1]
    assert trim_alleles(p, r, a) == (p, r, a)  # idempotent


def test_unnormalised_alleles_are_trimmed_before_typing(target: NodeTarget, tmp_path: Path) -> None:
    vcf = tmp_path / "padded.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##reference=GRCh38\n##contig=<ID=chr1,length=100000>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP1-T1\n"
        "chr1\t100\t.\tTATATA\tAATATA\t.\tPASS\t.\tGT\t0/1\n"
        "chr1\t200\t.\tCTTT\tCTT\t.\tPASS\t.\tGT\t1/1\n"
        "chr1\t300\t.\tGAC\tGTT\t.\tPASS\t.\tGT\t0/1\n"
    )
    assert ingest_vcf([vcf], target).ingested == 1
    with target.store.reading() as con:
        rows = con.execute(
            "SELECT pos, ref, alt, variant_type, id FROM variant ORDER BY pos"
        ).fetchall()
    assert rows == [
        (100, "T", "A", "SNP", "GRCh38:1:100:T:A"),
        (200, "CT", "C", "INDEL", "GRCh38:1:200:CT:C"),
        (301, "AC", "TT", "MNP", "GRCh38:1:301:AC:TT"),
    ]


def _no_trace_of(target: NodeTarget, dataset: str) -> None:
    with target.store.reading() as con:
        for table in ("variant", "variant_call", "patient", "biosample"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
        rows = con.execute("SELECT id FROM dataset WHERE id = ?", [dataset]).fetchall()
        assert rows == []  # no empty dataset for the catalogue to publish


@pytest.mark.parametrize("cut", ["bgzf", "plain"])
def test_truncated_vcf_is_one_line_and_loads_nothing(
    cut: str, target: NodeTarget, tmp_path: Path
) -> None:
    whole = bff_assets() / "test_1000G.norm.ann.dbnsfp.clinvar.cosmic.vcf.gz"
    if cut == "bgzf":
        vcf = tmp_path / "cut.vcf.gz"
        vcf.write_bytes(whole.read_bytes()[:100_000])  # inside a BGZF block
    else:
        vcf = tmp_path / "cut.vcf"
        vcf.write_bytes(gzip.decompress(whole.read_bytes())[:150_000])  # inside a line
    samples = SampleMap.from_options(r"^(?P<patient>.+)$")
    report = ingest_vcf([vcf], target, "g1k", samples, "GRCh37")
    outcome = report.files[0]
    assert outcome.status == "rejected"
    assert "\n" not in outcome.detail and str(vcf) in outcome.detail
    assert "truncated" in outcome.detail and re.search(r"after line \d+ \(1:\d+\)", outcome.detail)
    _no_trace_of(target, "g1k")


def test_truncated_vcf_through_the_cli_exits_1_without_a_traceback(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from oncofed.cli import app

    node = tmp_path / "node"
    init = ["node", "init", "--dir", str(node), "--name", "cut-node"]
    assert CliRunner().invoke(app, init).exit_code == 0
    whole = bff_assets() / "test_1000G.norm.ann.dbnsfp.clinvar.cosmic.vcf.gz"
    vcf = tmp_path / "cut.vcf.gz"
    vcf.write_bytes(whole.read_bytes()[:100_000])
    result = CliRunner().invoke(
        app, ["node", "ingest", "vcf", str(vcf), "--dir", str(node), "--assembly", "GRCh37"]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "truncated" in result.output


def test_header_missing_a_sample_is_refused(target: NodeTarget, tmp_path: Path) -> None:
    vcf = tmp_path / "shifted.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##reference=GRCh38\n##contig=<ID=chr1,length=1000>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP1-T1\tP2-T1\n"
        "chr1\t100\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0\t1/1\n"
        "chr1\t200\t.\tA\tC\t.\tPASS\t.\tGT\t0/0\t0/1\t0/1\n"
    )
    outcome = ingest_vcf([vcf], target, "shifted").files[0]
    assert outcome.status == "rejected"
    assert "line 6 (chr1:100)" in outcome.detail and "missing from the header" in outcome.detail
    _no_trace_of(target, "shifted")


def test_the_ledger_knows_the_dataset(synth: Path, target: NodeTarget) -> None:
    gz = next((synth / "variants").glob("*.vcf.gz"))
    assert ingest_vcf([gz], target, "first").ingested == 1
    again = ingest_vcf([gz], target, "first")
    assert again.unchanged == 1 and "first" in again.files[0].detail
    other = ingest_vcf([gz], target, "second")  # the same file into another dataset
    assert other.ingested == 1, other.files
    with target.store.reading() as con:
        calls = dict(
            con.execute("SELECT dataset_id, count(*) FROM variant_call GROUP BY 1").fetchall()
        )
    assert calls["second"] == calls["first"] > 0


def test_bgzf_cut_between_blocks_is_truncated(
    synth: Path, target: NodeTarget, tmp_path: Path
) -> None:
    """Cut exactly between two BGZF blocks, a file reads as a shorter valid VCF: the missing
    end-of-file block is what gives it away."""
    data = next((synth / "variants").glob("*.vcf.gz")).read_bytes()
    starts, offset = [], 0
    while offset < len(data):  # walk the blocks by their BSIZE field
        starts.append(offset)
        offset += int.from_bytes(data[offset + 16 : offset + 18], "little") + 1
    assert offset == len(data) and len(starts) >= 2
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: starts[-1]])  # every data block, no end block
    outcome = ingest_vcf([cut], target, "cut").files[0]
    assert outcome.status == "rejected" and "no BGZF end-of-file block" in outcome.detail
    _no_trace_of(target, "cut")
