"""VCF files (plain or bgzipped) into variants and per-sample calls (cyvcf2).

Each sample column is mapped to a patient (:class:`SampleMap`: a suffix rule, a regular
expression, or a two-column CSV), and both become keyed pseudonyms: the biosample with kind
``sample``, the patient with kind ``patient``, the same pseudonym the images and clinical
records of that patient carry. Only non-reference calls are stored (``0/0`` and ``./.`` are
not). Gene, consequence and protein change come from ``ANN`` (SnpEff) or ``CSQ`` (VEP)
annotations when present; every gene an annotation names is indexed for gene queries.

Multi-allelic records are split into one variant per alternate allele, and each allele pair
is stored trimmed (:func:`trim_alleles`), so that its type and its id do not depend on how
the caller padded it. Chromosome names are stored without a ``chr`` prefix (``1``, ``X``,
``MT``); queries accept either.
"""

from __future__ import annotations

import csv
import gzip
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from oncofed.node.ingest.common import (
    CsvSink,
    FileOutcome,
    ImportReport,
    NodeTarget,
    Pseudonyms,
    RecordError,
    TargetDataset,
    bulk_csv,
    import_file,
    prepare_dataset,
)

KIND = "vcf"
DEFAULT_SAMPLE_PATTERN = r"^(?P<patient>.+?)(?:[-_](?P<type>[TNB])\d*)?$"
SAMPLE_TYPES = {"T": "tumour", "N": "normal", "B": "blood"}
ASSEMBLIES = {
    "grch38": "GRCh38",
    "hg38": "GRCh38",
    "grch37": "GRCh37",
    "hg19": "GRCh37",
    "b37": "GRCh37",
    "hs37d5": "GRCh37",
}


def normalise_chrom(name: str) -> str:
    """'chr1' → '1', 'chrM' → 'MT', 'X' → 'X' (what is stored and queried)."""
    base = name[3:] if name.lower().startswith("chr") else name
    return "MT" if base.upper() in ("M", "MT") else base.upper() if len(base) <= 2 else base


def normalise_assembly(name: str) -> str:
    return ASSEMBLIES.get(name.strip().lower(), name.strip())


def trim_alleles(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """The parsimonious form of an allele pair: shared trailing, then leading, bases removed
    while both alleles keep one (the VCF anchor base of an indel stays).

    ``TATATA>AATATA`` at 100 is ``T>A`` at 100, a SNP; ``CTT>CT`` is ``CT>C``; an indel
    already anchored is unchanged. Without the reference sequence this cannot left-align,
    so a caller's unaligned indel stays where it is; bcftools norm does both.
    """
    ref, alt = ref.upper(), alt.upper()
    if alt.startswith("<"):
        return pos, ref, alt
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt


def variant_type(ref: str, alt: str) -> str:
    """Beacon/BFF variant types: SNP, MNP, INDEL, or the symbolic allele's type (of alleles
    already trimmed by :func:`trim_alleles`)."""
    if alt.startswith("<") and alt.endswith(">"):
        return alt[1:-1].split(":")[0]
    if len(ref) == len(alt):
        return "SNP" if len(ref) == 1 else "MNP"
    return "INDEL"


def variant_id(assembly: str, chrom: str, pos: int, ref: str, alt: str) -> str:
    return f"{assembly}:{chrom}:{pos}:{ref}:{alt}"


@dataclass
class SampleMap:
    """Sample column name → (patient source id, sample type)."""

    pattern: re.Pattern[str] = field(default_factory=lambda: re.compile(DEFAULT_SAMPLE_PATTERN))
    table: dict[str, str] | None = None

    @classmethod
    def from_options(cls, pattern: str | None = None, table: Path | None = None) -> SampleMap:
        rows: dict[str, str] | None = None
        if table is not None:
            rows = {}
            with table.open(newline="", encoding="utf-8-sig") as fh:
                for line, row in enumerate(csv.reader(fh), start=1):
                    if not row or row[0].startswith("#"):
                        continue
                    if len(row) < 2:
                        raise RecordError(
                            str(table), f"line {line}", "-", "two columns: sample,patient", row
                        )
                    if line == 1 and row[0].strip().lower() == "sample":
                        continue
                    rows[row[0].strip()] = row[1].strip()
        try:
            compiled = re.compile(pattern or DEFAULT_SAMPLE_PATTERN)
        except re.error as exc:
            raise RecordError(
                "--sample-pattern", "option", "pattern", "a regular expression", exc
            ) from exc
        return cls(compiled, rows)

    def patient(self, sample: str, file: str) -> tuple[str, str | None]:
        match = self.pattern.match(sample)
        kind = None
        if match and "type" in match.groupdict() and match.group("type"):
            kind = SAMPLE_TYPES.get(match.group("type"))
        if self.table is not None:
            if sample not in self.table:
                raise RecordError(
                    file, "header", f"sample {sample}", "a sample listed in the sample map"
                )
            return self.table[sample], kind
        if match is None:
            raise RecordError(
                file, "header", f"sample {sample}", f"a name matching {self.pattern.pattern!r}"
            )
        groups = match.groupdict()
        patient = groups.get("patient") or (match.group(1) if match.groups() else sample)
        return patient, kind


class Annotations:
    """Reads gene / consequence / protein change per alternate allele from ANN or CSQ."""

    def __init__(self, header: Any) -> None:
        self.key: str | None = None
        self.cols: dict[str, int] = {}
        for key, allele, effect, gene, protein in (
            ("ANN", "Allele", "Annotation", "Gene_Name", "HGVS.p"),
            ("CSQ", "Allele", "Consequence", "SYMBOL", "HGVSp"),
        ):
            try:
                info = header.get_header_type(key)
            except KeyError:
                continue
            desc = str(info.get("Description", "")).strip().strip('"').strip()
            fmt = desc.split(":", 1)[1] if ":" in desc else desc
            names = [n.strip().strip("'\" ") for n in fmt.split("|")]
            wanted = {"allele": allele, "effect": effect, "gene": gene, "protein": protein}
            if all(v in names for v in wanted.values() if v != protein):
                self.key = key
                self.cols = {k: names.index(v) for k, v in wanted.items() if v in names}
                break

    def for_alt(self, raw: str | None, alt: str) -> tuple[list[str], str | None, str | None]:
        """(genes in order, first consequence, first protein change) for this allele."""
        if not raw or self.key is None:
            return [], None, None
        genes: list[str] = []
        effect = protein = None
        for entry in raw.split(","):
            parts = entry.split("|")
            if len(parts) <= max(self.cols.values()):
                continue
            allele = parts[self.cols["allele"]]
            if allele not in (alt, "-") and not (self.key == "CSQ" and len(alt) != 1):
                continue
            gene = parts[self.cols["gene"]]
            if gene and gene not in genes:
                genes.append(gene)
            if effect is None and parts[self.cols["effect"]]:
                effect = parts[self.cols["effect"]].split("&")[0]
            if protein is None and "protein" in self.cols and parts[self.cols["protein"]]:
                protein = parts[self.cols["protein"]]
        return genes, effect, protein


def _assembly_of(vcf: Any, default: str | None) -> str:
    if default:
        return normalise_assembly(default)
    text = vcf.raw_header
    m = re.search(r"assembly=([A-Za-z0-9._]+)", text) or re.search(
        r"##reference=.*?(GRCh3[78]|hg19|hg38|hs37d5|b37)", text
    )
    if m is None:
        raise RecordError(
            str(vcf.fname if hasattr(vcf, "fname") else "vcf"),
            "header",
            "##reference / contig assembly",
            "a reference assembly in the header, or pass --assembly GRCh38|GRCh37",
        )
    return normalise_assembly(m.group(1))


def _open(path: Path) -> Any:
    from cyvcf2 import VCF

    try:
        return VCF(str(path), gts012=False, lazy=True, threads=1)
    except (OSError, Exception) as exc:
        raise RecordError(str(path), "file", "-", "a VCF file (plain or bgzipped)", exc) from exc


@dataclass
class _Counts:
    variants: int = 0
    calls: int = 0
    records: int = 0


def _labels(codes: np.ndarray, ploidy: int, k: int) -> tuple[list[str], list[str]]:
    """Genotype labels ('0|1') and zygosities for encoded genotypes (see _encode)."""
    labels, zygs = [], []
    for code in codes.tolist():
        phased, rest = code % 2, code // 2
        alleles = []
        for _ in range(ploidy):
            alleles.append(rest % 256 - 1)
            rest //= 256
        alleles.reverse()
        labels.append(("|" if phased else "/").join("." if a < 0 else str(a) for a in alleles))
        called = [a for a in alleles if a >= 0]
        if len(called) == 1:
            zygs.append("hemizygous")
        elif all(a == k for a in called):
            zygs.append("homozygous")
        else:
            zygs.append("heterozygous")
    return labels, zygs


def _encode(gts: np.ndarray) -> np.ndarray:
    """One integer per sample for its genotype: alleles base 256 (missing = 0), then phase."""
    code = np.zeros(gts.shape[0], dtype=np.int64)
    for j in range(gts.shape[1] - 1):
        code = code * 256 + (np.clip(gts[:, j], -1, 254) + 1)
    return code * 2 + (gts[:, -1] > 0)


def _rows(
    path: Path,
    vcf: Any,
    assembly: str,
    with_samples: bool,
    progress: Progress | None,
) -> Iterator[tuple[list[Any], list[str], tuple[str, str, str] | None, int]]:
    """Per VCF record and alt: (variant row, genes, calls, number of calls).

    Calls come packed for speed: ';'-joined sample indices, genotype labels and zygosities.
    """
    ann = Annotations(vcf)
    task = progress.add_task(path.name, total=None) if progress else None
    for n, v in enumerate(_records(path, vcf), start=1):
        chrom = normalise_chrom(v.CHROM)
        ref = v.REF
        if not ref or not re.fullmatch(r"[ACGTNacgtn*]+", ref):
            raise RecordError(str(path), f"record {n} ({v.CHROM}:{v.POS})", "REF", "bases", ref)
        raw_ann = v.INFO.get(ann.key) if ann.key else None
        gts = v.genotype.array() if with_samples else None  # (n_samples, ploidy + 1)
        codes = _encode(gts) if gts is not None else None
        for k, alt in enumerate(v.ALT, start=1):
            if alt in ("*", ".", "<*>", "<NON_REF>"):
                continue
            if not re.fullmatch(r"[ACGTNacgtn]+|<[^>]+>", alt):
                raise RecordError(
                    str(path), f"record {n} ({v.CHROM}:{v.POS})", "ALT", "bases or <TYPE>", alt
                )
            genes, effect, protein = ann.for_alt(raw_ann, alt)
            pos, t_ref, t_alt = trim_alleles(v.POS, ref, alt)
            vid = variant_id(assembly, chrom, pos, t_ref, t_alt)
            row = [
                vid, assembly, chrom, pos, t_ref, t_alt, variant_type(t_ref, t_alt),
                genes[0] if genes else None, effect, protein,
            ]  # fmt: skip
            calls = None
            count = 0
            if gts is not None and codes is not None:
                carriers = np.nonzero((gts[:, :-1] == k).any(axis=1))[0]
                count = len(carriers)
                if count:
                    uniq, inverse = np.unique(codes[carriers], return_inverse=True)
                    labels, zygs = _labels(uniq, gts.shape[1] - 1, k)
                    calls = (
                        ";".join(map(str, carriers.tolist())),
                        ";".join(np.asarray(labels)[inverse].tolist()),
                        ";".join(np.asarray(zygs)[inverse].tolist()),
                    )
            yield row, genes, calls, count
        if progress is not None and task is not None and n % 1000 == 0:
            progress.update(task, completed=n)
    if progress is not None and task is not None:
        progress.update(task, visible=False)


def _records(path: Path, vcf: Any) -> Iterator[Any]:
    """The file's records; a read error (a cut BGZF block, a cut line) becomes one
    :class:`RecordError` naming the last record read, so the import rolls back."""
    records = iter(vcf)
    n, last = 0, "the header"
    while True:
        try:
            v = next(records)
        except StopIteration:
            return
        except Exception as exc:  # cyvcf2 raises a bare Exception for htslib errors
            raise RecordError(
                str(path), f"after record {n} ({last})", "file",
                "a complete VCF: it is truncated or corrupt here (htslib could not read on), "
                "nothing of it was loaded",
            ) from exc  # fmt: skip
        n += 1
        last = f"{v.CHROM}:{v.POS}"
        yield v


def check_columns(path: Path, samples: int) -> None:
    """Every record is complete and has the columns its ``#CHROM`` line names.

    htslib reads a record with *more* genotype columns than the header names without a
    word, so a header that lost a sample name would load every later column under the
    wrong sample; and a file cut at a line or block boundary can read as shorter but
    valid. One streaming pass over the text (gzip reads BGZF) refuses both first, naming
    the last good record.
    """
    expected = 8 if samples == 0 else 9 + samples
    opener = gzip.open if _is_gzip(path) else open
    line_no, last = 0, "the header"
    cut_at_block = _bgzf_without_eof(path)

    def truncated(detail: object) -> RecordError:
        return RecordError(
            str(path), f"after line {line_no} ({last})", "file",
            "a complete VCF: it is truncated here, nothing of it was loaded", detail,
        )  # fmt: skip

    try:
        with opener(path, "rb") as fh:
            for line_no, line in enumerate(fh, start=1):
                if line.startswith(b"#"):
                    continue
                got = line.count(b"\t") + 1
                where = b":".join(line.split(b"\t", 2)[:2]).decode(errors="replace")
                if got != expected and not (samples == 0 and got == 9):
                    if not line.endswith(b"\n"):  # the file's last line, cut short
                        line_no -= 1
                        raise truncated(f"a last line cut short ({where})")
                    raise RecordError(
                        str(path), f"line {line_no} ({where})", "columns",
                        f"{expected} columns, as the #CHROM line names (FORMAT and "
                        f"{samples} samples): is a sample missing from the header?", got,
                    )  # fmt: skip
                last = where
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise truncated(exc) from exc
    if cut_at_block:  # whole blocks read well; only the missing end marker tells
        raise truncated("no BGZF end-of-file block: the file was cut between two blocks")


BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def _bgzf_without_eof(path: Path) -> bool:
    """A BGZF file (gzip with the 'BC' extra field) that lacks the empty end block every
    BGZF writer adds: it was cut, and a cut between blocks reads as a shorter valid file."""
    with path.open("rb") as fh:
        head = fh.read(18)
        if len(head) < 18 or head[:4] != b"\x1f\x8b\x08\x04" or head[12:14] != b"BC":
            return False
        fh.seek(0, 2)
        if fh.tell() < len(BGZF_EOF):
            return True
        fh.seek(-len(BGZF_EOF), 2)
        return fh.read() != BGZF_EOF


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


class _VcfLoader:
    def __init__(
        self,
        path: Path,
        pseudonyms: Pseudonyms,
        samples: SampleMap,
        dataset: str,
        assembly: str | None,
        progress: Progress | None,
    ) -> None:
        self.path, self.pseudonyms, self.samples = path, pseudonyms, samples
        self.dataset, self.assembly, self.progress = dataset, assembly, progress
        self.counts = _Counts()

    def __call__(self, cur: duckdb.DuckDBPyConnection) -> tuple[int, str]:
        vcf = _open(self.path)
        try:
            assembly = _assembly_of(vcf, self.assembly)
            names = list(vcf.samples)
            check_columns(self.path, len(names))
            mapped = [self.samples.patient(s, str(self.path)) for s in names]
            sample_ids = [self.pseudonyms.of("sample", s) for s in names]
            patient_ids = [self.pseudonyms.patient(p) for p, _ in mapped]
            cur.execute(
                "INSERT INTO patient (id, dataset_id, source) "
                "SELECT DISTINCT unnest(?), ?, 'vcf' ON CONFLICT DO NOTHING",
                [patient_ids, self.dataset],
            )
            cur.execute(
                "INSERT INTO biosample (id, patient_id, sample_type, dataset_id) "
                "SELECT unnest(?), unnest(?), unnest(?), ? ON CONFLICT DO NOTHING",
                [sample_ids, patient_ids, [m[1] for m in mapped], self.dataset],
            )
            cur.execute("DROP TABLE IF EXISTS _s")
            cur.execute(
                "CREATE TEMP TABLE _s AS SELECT unnest(range(?)) AS i, unnest(?) AS biosample_id, "
                "unnest(?) AS patient_id",
                [len(sample_ids), sample_ids, patient_ids],
            )
            try:
                self._load_variants(cur, vcf, assembly, bool(sample_ids))
            finally:
                cur.execute("DROP TABLE IF EXISTS _s")
        finally:
            vcf.close()
        c = self.counts
        return c.variants, f"{c.records} records, {c.variants} variants, {c.calls} calls"

    def _load_variants(
        self, cur: duckdb.DuckDBPyConnection, vcf: Any, assembly: str, with_samples: bool
    ) -> None:
        vcols = (
            "id", "assembly", "chrom", "pos", "ref", "alt", "variant_type", "gene",
            "consequence", "hgvs_p",
        )  # fmt: skip
        calls_cols = ("variant_id", "samples", "genotypes", "zygosities")
        with bulk_csv(vcols, ("variant_id", "gene"), calls_cols) as (vs, gs, cs):
            seen: set[str] = set()
            last = None
            for row, genes, calls, count in _rows(
                self.path, vcf, assembly, with_samples, self.progress
            ):
                vid = row[0]
                if vid in seen:
                    continue  # a duplicated record: counted once
                seen.add(vid)
                if last != (row[2], row[3]):
                    self.counts.records += 1
                    last = (row[2], row[3])
                vs.write(row)
                for g in genes:
                    gs.write((vid, g))
                if calls is not None:
                    cs.write((vid, *calls))
                self.counts.variants += 1
                self.counts.calls += count
            self._copy(cur, vs, gs, cs)

    def _copy(self, cur: duckdb.DuckDBPyConnection, vs: CsvSink, gs: CsvSink, cs: CsvSink) -> None:
        cur.execute(f"CREATE TEMP TABLE _v AS SELECT * FROM {vs.sql()}")
        cur.execute(f"CREATE TEMP TABLE _g AS SELECT * FROM {gs.sql()}")
        cur.execute(
            "CREATE TEMP TABLE _c AS SELECT p.variant_id, s.biosample_id, s.patient_id, "
            "p.genotype, p.zygosity FROM (SELECT variant_id, "
            "CAST(unnest(string_split(samples, ';')) AS INTEGER) AS i, "
            "unnest(string_split(genotypes, ';')) AS genotype, "
            f"unnest(string_split(zygosities, ';')) AS zygosity FROM {cs.sql()}) p "
            "JOIN _s s ON s.i = p.i ORDER BY p.variant_id"
        )
        try:
            cur.execute(
                "INSERT INTO variant_gene SELECT g.variant_id, g.gene FROM _g g "
                "WHERE g.variant_id NOT IN (SELECT id FROM variant)"
            )
            cur.execute(
                "INSERT INTO variant (id, assembly, chrom, pos, ref, alt, variant_type, gene, "
                "consequence, hgvs_p) SELECT id, assembly, chrom, CAST(pos AS BIGINT), ref, alt, "
                "variant_type, nullif(gene, ''), nullif(consequence, ''), nullif(hgvs_p, '') "
                "FROM _v ORDER BY chrom, CAST(pos AS BIGINT) ON CONFLICT DO NOTHING"
            )
            cur.execute(
                "INSERT INTO variant_call (variant_id, biosample_id, patient_id, genotype, "
                "zygosity, dataset_id) SELECT variant_id, biosample_id, patient_id, genotype, "
                "zygosity, ? FROM _c",
                [self.dataset],
            )
            cur.execute(
                "INSERT INTO variant_dataset (variant_id, dataset_id, calls) "
                "SELECT v.id, ?, count(c.variant_id) FROM _v v "
                "LEFT JOIN _c c ON c.variant_id = v.id GROUP BY v.id "
                "ON CONFLICT DO UPDATE SET calls = variant_dataset.calls + excluded.calls",
                [self.dataset],
            )
        finally:
            for t in ("_v", "_g", "_c"):
                cur.execute(f"DROP TABLE IF EXISTS {t}")


def ingest_vcf(
    paths: list[Path],
    target: NodeTarget,
    dataset: str | None = None,
    samples: SampleMap | None = None,
    assembly: str | None = None,
    access_level: str | None = None,
    progress: bool = False,
    console: Console | None = None,
) -> ImportReport:
    """Import VCF files; each in one transaction, a file already in the ledger skipped."""
    dataset_id = dataset or target.default_dataset("genomic")
    spec = TargetDataset(dataset_id, description="Variant calls imported from VCF",
                       access_level=access_level)  # fmt: skip
    prepare_dataset(target.store, spec)
    report = ImportReport(f"VCF import into {dataset_id}")
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(
                f for f in p.rglob("*") if f.name.endswith((".vcf", ".vcf.gz", ".vcf.bgz"))
            )
        else:
            files.append(p)
    bar = (
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}: {task.completed} records"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        if progress
        else None
    )
    started = time.perf_counter()
    if bar is not None:
        bar.start()
    try:
        for f in files:
            if not f.is_file():
                report.files.append(_missing(f))
                continue
            loader = _VcfLoader(
                f, target.pseudonyms, samples or SampleMap(), dataset_id, assembly, bar
            )
            import_file(target.store, report, f, KIND, loader, spec)
    finally:
        if bar is not None:
            bar.stop()
    report.seconds = time.perf_counter() - started
    return report


def _missing(path: Path) -> FileOutcome:
    return FileOutcome(str(path), KIND, "rejected", 0, f"{path}: no such file")


def vcf_command(
    paths: list[Path],
    node_dir: Path,
    dataset: str | None = None,
    sample_pattern: str | None = None,
    sample_map: Path | None = None,
    assembly: str | None = None,
    access_level: str | None = None,
    progress: bool = True,
) -> ImportReport:
    """`oncofed node ingest vcf PATHS`: VCF / VCF.gz files or folders of them.

    Samples map to patients by ``--sample-map sample,patient.csv`` or ``--sample-pattern``
    (a regex with a ``patient`` group; the default strips a ``-T1``/``-N1`` suffix).
    """
    console = Console()
    target = NodeTarget.open(node_dir)
    try:
        samples = SampleMap.from_options(sample_pattern, sample_map)
        report = ingest_vcf(
            paths, target, dataset, samples, assembly, access_level, progress, console
        )
    finally:
        target.close()
    report.print(console)
    if report.seconds:
        rate = report.records / report.seconds
        console.print(f"{report.records} variants in {report.seconds:.1f} s ({rate:.0f}/s)")
    return report
