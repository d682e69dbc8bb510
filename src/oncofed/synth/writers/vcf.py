"""Somatic VCFs (VCFv4.2, GRCh38), bgzipped, in batches of at most `BATCH` samples.

A single multi-sample VCF with 100k sample columns is unusable, so sequenced patients are
cut into consecutive batches: `variants/somatic-0001.vcf.gz`, `somatic-0002.vcf.gz`, ...
Each file holds only its batch's samples and the records at least one of them carries,
sorted by contig and position. Batches are buffered (bounded by BATCH) and flushed.

BGZF is written here with zlib (a series of gzip members with the `BC` extra field, and the
empty end-of-file block), so no pysam/htslib is needed and the output is byte-stable: no
timestamp goes into the gzip headers. `tabix` can index the files as they are.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from types import TracebackType

from oncofed.synth.model import PatientRecord, VariantCall
from oncofed.synth.vocabulary import CONTIG_ORDER, GRCH38_CONTIGS

BATCH = 1000
_BGZF_BLOCK = 0xFF00  # uncompressed bytes per block, as htslib uses
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def bgzf_block(data: bytes) -> bytes:
    """One BGZF block (a gzip member whose extra field gives the block size)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = compressor.compress(data) + compressor.flush()
    size = len(deflated) + 25  # header 18 + footer 8, minus one
    header = struct.pack("<4BI2BH2BHH", 0x1F, 0x8B, 8, 4, 0, 0, 0xFF, 6, 66, 67, 2, size)
    footer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data))
    return header + deflated + footer


def write_bgzf(path: Path, text: str) -> None:
    """Write `text` as a BGZF file (bgzip-compatible)."""
    data = text.encode()
    with path.open("wb") as handle:
        for offset in range(0, len(data), _BGZF_BLOCK):
            handle.write(bgzf_block(data[offset : offset + _BGZF_BLOCK]))
        handle.write(_BGZF_EOF)


def _ann(call: VariantCall) -> str:
    """The SnpEff ANN value: Allele|Annotation|Impact|Gene_Name|Gene_ID|Feature_Type|
    Feature_ID|Transcript_BioType|Rank|HGVS.c|HGVS.p|cDNA|CDS|AA|Distance|Errors."""
    return "|".join(
        [
            call.alt,
            call.consequence,
            call.impact,
            call.gene,
            call.gene_id,
            "transcript",
            call.transcript,
            "protein_coding",
            call.exon,
            call.hgvs_c,
            call.hgvs_p,
            "",
            "",
            "",
            "",
            "",
        ]
    )


def header(samples: list[str], source: str) -> list[str]:
    """The VCF header lines for these sample columns."""
    lines = [
        "##fileformat=VCFv4.2",
        f"##source={source}",
        "##reference=GRCh38",
        *[
            f"##contig=<ID={name},length={length},assembly=GRCh38>"
            for name, length in GRCH38_CONTIGS
        ],
        '##INFO=<ID=ANN,Number=.,Type=String,Description="Functional annotations: '
        "'Allele | Annotation | Annotation_Impact | Gene_Name | Gene_ID | Feature_Type | "
        "Feature_ID | Transcript_BioType | Rank | HGVS.c | HGVS.p | cDNA.pos / cDNA.length | "
        "CDS.pos / CDS.length | AA.pos / AA.length | Distance | ERRORS / WARNINGS / INFO'\">",
        '##INFO=<ID=SOMATIC,Number=0,Type=Flag,Description="Somatic mutation">',
        '##INFO=<ID=NS,Number=1,Type=Integer,Description="Number of samples carrying the ALT">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
        '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Variant allele fraction">',
        "#"
        + "\t".join(
            ["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]
        ),
    ]
    return lines


class VcfBatchWriter:
    """Collects sequenced patients and writes one VCF per `batch` of them."""

    def __init__(self, root: Path, source: str, batch: int = BATCH) -> None:
        self.folder = root / "variants"
        self.source = source
        self.batch = batch
        self._pending: list[PatientRecord] = []
        self.files: list[Path] = []
        self.samples = 0
        self.records = 0

    def __enter__(self) -> VcfBatchWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.flush()

    def add(self, record: PatientRecord) -> None:
        """Queue a patient; unsequenced patients are ignored."""
        if record.sample_id is None:
            return
        self._pending.append(record)
        if len(self._pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Write the pending batch, if any."""
        if not self._pending:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        samples = [r.sample_id or "" for r in self._pending]
        sites: dict[tuple[int, int, str, str], tuple[VariantCall, dict[int, VariantCall]]] = {}
        for column, record in enumerate(self._pending):
            for call in record.variants:
                key = (CONTIG_ORDER[call.chrom], call.pos, call.ref, call.alt)
                sites.setdefault(key, (call, {}))[1][column] = call
        lines = header(samples, self.source)
        for key in sorted(sites):
            first, carriers = sites[key]
            cells = []
            for column in range(len(samples)):
                carried = carriers.get(column)
                cells.append(f"0/1:{carried.depth}:{carried.vaf}" if carried else "0/0:.:.")
            info = f"SOMATIC;NS={len(carriers)};ANN={_ann(first)}"
            lines.append(
                "\t".join(
                    [
                        first.chrom,
                        str(first.pos),
                        ".",
                        first.ref,
                        first.alt,
                        ".",
                        "PASS",
                        info,
                        "GT:DP:AF",
                        *cells,
                    ]
                )
            )
        path = self.folder / f"somatic-{len(self.files) + 1:04d}.vcf.gz"
        write_bgzf(path, "\n".join(lines) + "\n")
        self.files.append(path)
        self.samples += len(samples)
        self.records += len(sites)
        self._pending = []
