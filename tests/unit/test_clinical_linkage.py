"""One patient's images, clinical records and variants share one pseudonym, never the MRN."""

from __future__ import annotations

import csv
from pathlib import Path

from oncofed.node.deid import DeidContext
from oncofed.node.ingest.clinical_csv import ingest_clinical
from oncofed.node.ingest.common import NodeTarget
from oncofed.node.ingest.fhir import ingest_fhir
from oncofed.node.ingest.vcf import ingest_vcf
from oncofed.security.pseudonym import load_secret
from tests.clinical_fixtures import make_node, make_synth


def test_one_pseudonym_across_sources(tmp_path: Path) -> None:
    synth = make_synth(tmp_path / "synth", patients=30)
    node = make_node(tmp_path / "node")
    target = NodeTarget.open(node)
    try:
        ingest_clinical([synth / "clinical"], synth / "clinical" / "mapping.yaml", target)
        ingest_fhir([synth / "fhir"], target)
        ingest_vcf([synth / "variants"], target)
        secret = load_secret(target.settings.resolve(target.settings.secret_file))
        deid = DeidContext(secret, target.pseudonyms.provider_id)
        with (synth / "clinical" / "patients.csv").open() as fh:
            mrns = [r["mrn"] for r in csv.DictReader(fh)]
        with target.store.reading() as con:
            carriers = {
                r[0] for r in con.execute("SELECT DISTINCT patient_id FROM variant_call").fetchall()
            }
            assert carriers
            linked = 0
            for mrn in mrns:
                pid = deid.pseudonym(mrn)  # what the DICOM de-identification writes
                assert pid == target.pseudonyms.patient(mrn)
                n = con.execute(
                    "SELECT (SELECT count(*) FROM patient WHERE id = $1), "
                    "(SELECT count(*) FROM disease WHERE patient_id = $1), "
                    "(SELECT count(*) FROM outcome WHERE patient_id = $1)",
                    [pid],
                ).fetchone()
                assert n is not None and n[0] == 1 and n[1] >= 1 and n[2] == 1
                linked += pid in carriers
            assert linked == len(carriers)
            dump = ""
            for table in (
                "patient",
                "disease",
                "treatment",
                "outcome",
                "biosample",
                "variant_call",
                "biomarker",
            ):
                dump += str(con.execute(f"SELECT * FROM {table}").fetchall())
        assert not any(m in dump for m in mrns)
    finally:
        target.close()
