"""Image ingest end to end on real corpora: pydicom's test files and deid-data."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from oncofed.node.deid import DeidContext
from oncofed.node.deid.burnedin import hold_reason, hold_reason_of
from oncofed.node.deid.fastpath import process
from oncofed.node.ingest.images import (
    QuarantineError,
    _check_fast,
    _check_parsed,
    _DatasetFields,
    _FastView,
    ingest_images,
)
from tests.imaging_fixtures import (
    PHI,
    PROVIDER,
    SECRET,
    Node,
    deid_data_files,
    independent_leaks,
    make_ct,
    make_node,
    make_seg,
    pydicom_test_files,
    read,
    save,
)


def _ledger(node: Node) -> dict[str, tuple[str, str | None]]:
    with node.store.reading() as con:
        rows = con.execute("SELECT source_path, status, detail FROM ingest_ledger").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _stored_files(node: Node) -> list[Path]:
    return sorted(node.cas.root.rglob("*.dcm"))


@pytest.mark.parametrize("corpus", ["pydicom", "deid-data"])
def test_corpus_comes_out_clean_or_quarantined(tmp_path: Path, corpus: str) -> None:
    files = pydicom_test_files() if corpus == "pydicom" else deid_data_files()
    assert len(files) > (150 if corpus == "pydicom" else 10)
    node = make_node(tmp_path)
    report = ingest_images(files, node.store, node.ctx, node.cas, node.quarantine, progress=False)
    # Identical files in the corpus count as duplicates.
    assert report.ingested + report.duplicates + report.held + report.quarantined_total == (
        report.seen
    )
    assert report.ingested > 0
    ledger = _ledger(node)
    by_hash_count = len(ledger)
    assert by_hash_count == report.seen - report.duplicates + sum(
        1 for s, _ in ledger.values() if s == "duplicate"
    )
    for _path, (status, detail) in ledger.items():
        assert status in ("ingested", "duplicate", "quarantined", "held")
        if status in ("quarantined", "held"):
            assert detail and ":" in detail  # reason: what to do
    # Zero PHI survives: the independent scan over every published file.
    sources = {}
    for f in files:
        if f.suffix == ".zip":
            continue
        try:
            ds = read(f)
            sources[str(ds.get("SOPInstanceUID", ""))] = ds
        except Exception:
            continue
    published = _stored_files(node)
    assert len(published) == report.ingested
    with node.store.reading() as con:
        rows = con.execute("SELECT content_hash FROM imaging_instance").fetchall()
    assert {r[0] for r in rows} == {p.stem for p in published}
    leaks = []
    for path in published:
        out = read(path)
        assert out.PatientIdentityRemoved == "YES"
        assert not any(e.tag.is_private for e in out.iterall())
        for src in sources.values():
            if str(src.get("PatientID", "")).strip() and src.get("PatientID") == out.get(
                "PatientID"
            ):
                leaks.append(f"{path.name}: PatientID kept")
        # Every source with the same pseudonym is a candidate original.
        for src in sources.values():
            if node.ctx.pseudonym(str(src.get("PatientID") or "").strip() or "x") != out.PatientID:
                continue
            leaks.extend(f"{path.name}: {leak}" for leak in independent_leaks(src, out))
    assert leaks == []


def test_ingest_is_idempotent_and_indexes(tmp_path: Path) -> None:
    study, series = "1.2.3.100", "1.2.3.200"
    ct = [make_ct(study_uid=study, series_uid=series, instance=i) for i in range(1, 5)]
    seg = make_seg(ct)
    src = tmp_path / "src"
    for i, ds in enumerate(ct):
        save(ds, src / "ct" / f"{i}.dcm")
    save(seg, src / "seg" / "seg.dcm")
    (src / "notes.txt").write_text("not an image")
    truncated = (src / "ct" / "0.dcm").read_bytes()[:-100]
    (src / "cut.dcm").write_bytes(truncated)
    node = make_node(tmp_path / "node")
    originals = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    first = ingest_images([src], node.store, node.ctx, node.cas, node.quarantine, progress=False)
    assert first.ingested == 5
    assert first.quarantined == {"not-dicom": 1, "truncated": 1}
    second = ingest_images([src], node.store, node.ctx, node.cas, node.quarantine, progress=False)
    # What was stored is recognised; what was quarantined is tried again (and quarantined
    # again), never reported as already stored.
    assert second.ingested == 0 and second.seen == 7 and second.duplicates == 5
    assert second.retried == 2 and second.quarantined == first.quarantined
    assert len(_stored_files(node)) == 5
    assert {p: p.read_bytes() for p in originals} == originals  # originals untouched
    with node.store.reading() as con:
        series_rows = con.execute(
            "SELECT uid, study_uid, patient_id, modality, body_part, manufacturer, "
            "series_month, slice_thickness, rows_, columns_, num_instances, "
            "seg_source_series_uid FROM imaging_series ORDER BY modality"
        ).fetchall()
        patients = con.execute("SELECT id, dataset_id, sex FROM patient").fetchall()
        studies = con.execute("SELECT uid, study_month, age_at_study FROM imaging_study").fetchall()
        quarantine = con.execute("SELECT reason, detail FROM quarantine").fetchall()
    (ct_row, seg_row) = series_rows
    assert ct_row[3:11] == ("CT", "CHEST", "SIEMENS", "2021-03", 1.0, 16, 16, 4)
    assert seg_row[3] == "SEG" and seg_row[11] == ct_row[0]
    assert ct_row[1] == seg_row[1]
    assert patients == [(node.ctx.pseudonym(PHI["patient_id"]), "testprov-imaging", "female")]
    assert studies == [(ct_row[1], "2021-03", 61)]
    assert {r[0] for r in quarantine} == {"not-dicom", "truncated"}
    assert all(r[1] for r in quarantine)


def test_same_patient_from_two_ingests_links(tmp_path: Path) -> None:
    node = make_node(tmp_path / "node")
    a = save(make_ct(), tmp_path / "a" / "1.dcm")
    b = save(make_ct(), tmp_path / "b" / "1.dcm")
    ingest_images([a], node.store, node.ctx, node.cas, node.quarantine, progress=False)
    ingest_images([b], node.store, node.ctx, node.cas, node.quarantine, progress=False)
    with node.store.reading() as con:
        rows = con.execute("SELECT DISTINCT patient_id FROM imaging_series").fetchall()
    assert rows == [(node.ctx.pseudonym(PHI["patient_id"]),)]


def test_zip_archives_and_holds(tmp_path: Path) -> None:
    node = make_node(tmp_path / "node")
    archive = tmp_path / "export.zip"
    burned = make_ct()
    burned.BurnedInAnnotation = "YES"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/1.dcm", _bytes(make_ct()))
        zf.writestr("a/2.dcm", _bytes(burned))
    report = ingest_images(
        [archive], node.store, node.ctx, node.cas, node.quarantine, progress=False
    )
    assert (report.ingested, report.held) == (1, 1)
    ledger = _ledger(node)
    assert ledger[f"{archive}!a/2.dcm"][0] == "held"
    assert list((node.quarantine / "held").rglob("*.dcm"))


def test_rerun_after_crash_completes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from oncofed.node.ingest import images

    src = tmp_path / "src"
    for i in range(6):
        save(make_ct(instance=i), src / f"{i}.dcm")
    node = make_node(tmp_path / "node")
    monkeypatch.setattr(images, "BATCH_FILES", 4)
    calls = {"n": 0}
    original = images.ImageIngest._record

    def crash_second(self, fresh, decisions):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash")
        return original(self, fresh, decisions)

    monkeypatch.setattr(images.ImageIngest, "_record", crash_second)
    with pytest.raises(KeyboardInterrupt):
        ingest_images([src], node.store, node.ctx, node.cas, node.quarantine, progress=False)
    monkeypatch.setattr(images.ImageIngest, "_record", original)
    report = ingest_images([src], node.store, node.ctx, node.cas, node.quarantine, progress=False)
    assert (report.ingested, report.duplicates) == (2, 4)
    with node.store.reading() as con:
        assert con.execute("SELECT count(*) FROM imaging_instance").fetchone() == (6,)
    assert len(_stored_files(node)) == 6


def _bytes(ds) -> bytes:  # type: ignore[no-untyped-def]
    from pydicom.filebase import DicomBytesIO

    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        ingest_images(
            [tmp_path / "nope"], node.store, node.ctx, node.cas, node.quarantine, progress=False
        )
    shutil.rmtree(tmp_path / "images", ignore_errors=True)


def test_fast_view_reads_what_pydicom_reads() -> None:
    """On the fast path ingest reads the index values, the hold-back facts and the pixel
    length check from the bytes; over real corpora they agree with reading the same
    elements through pydicom (the pydicom path)."""
    keywords = [
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "SOPClassUID",
        "Modality",
        "PatientSex",
        "StudyDate",
        "SeriesDate",
        "StudyDescription",
        "SeriesDescription",
        "PatientAge",
        "BodyPartExamined",
        "Manufacturer",
        "ManufacturerModelName",
    ]
    ctx = DeidContext(SECRET, PROVIDER)
    answered = 0

    def outcome(check: object, arg: object) -> str | None:
        try:
            check(arg)  # type: ignore[operator]
        except QuarantineError as exc:
            return exc.reason
        return None

    for path in pydicom_test_files() + deid_data_files():
        fast = process(path.read_bytes(), ctx)
        if fast is None:
            continue
        answered += 1
        view, slow = _FastView(fast), _DatasetFields(fast.output)
        source: Dataset = fast.source
        for keyword in keywords:
            fast_text, slow_text = view.text(keyword), slow.text(keyword)
            if fast_text is not None and slow_text is not None and "[" in slow_text:
                continue  # several values: pydicom prints a list, the bytes keep them joined
            assert fast_text == slow_text, (path.name, keyword)
        assert view.number("SliceThickness") == slow.number("SliceThickness")
        assert view.integer("Rows") == slow.integer("Rows")
        assert view.integer("Columns") == slow.integer("Columns")
        assert hold_reason_of(view.source_values) == hold_reason(source), path.name
        assert outcome(_check_fast, view) == outcome(lambda ds: _check_parsed(ds, True), source)
    assert answered >= 100


def test_zip_members_are_bounded_and_names_checked(tmp_path: Path) -> None:
    """A zip bomb member is refused before it is inflated, members named out of the archive
    are reported, and the good member still imports."""
    from oncofed.node.ingest.archive import ZipLimits, unsafe_name, zip_members

    node = make_node(tmp_path / "node")
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok/1.dcm", _bytes(make_ct()))
        zf.writestr("bomb.dcm", b"\0" * (40 * 1024**2))  # 40 MiB of zeros: ~40 KB zipped
        zf.writestr("../../evil.dcm", _bytes(make_ct()))
        zf.writestr("/abs/evil.dcm", _bytes(make_ct()))
    report = ingest_images(
        [archive], node.store, node.ctx, node.cas, node.quarantine, progress=False
    )
    assert report.ingested == 1
    reasons = {r.source.rsplit("!", 1)[-1]: r.detail for r in report.rejections}
    assert "zip bomb" in reasons["bomb.dcm"]
    assert "climbs out" in reasons["../../evil.dcm"]
    assert "absolute path" in reasons["/abs/evil.dcm"]
    assert not (tmp_path / "evil.dcm").exists() and not Path("/abs/evil.dcm").exists()
    # per member and total bounds
    small = ZipLimits(member_bytes=1000, total_bytes=1500)
    with zipfile.ZipFile(tmp_path / "sizes.zip", "w") as zf:
        for i in range(3):
            zf.writestr(f"{i}.bin", b"x" * 700)
        zf.writestr("big.bin", b"x" * 2000)
    with zipfile.ZipFile(tmp_path / "sizes.zip") as zf:
        outcomes = {}
        for m in zip_members(zf, tmp_path / "sizes.zip", small):
            try:
                outcomes[m.name.rsplit("!", 1)[-1]] = len(m.read())
            except OSError as exc:
                outcomes[m.name.rsplit("!", 1)[-1]] = str(exc)
    assert outcomes["0.bin"] == 700 and outcomes["1.bin"] == 700
    assert "in all" in str(outcomes["2.bin"]) and "per member" in str(outcomes["big.bin"])
    assert unsafe_name("C:\\x.dcm") and unsafe_name("a/../../b") and not unsafe_name("a/b.dcm")


def test_studies_that_disagree_about_sex_make_it_unknown_and_are_reported(
    tmp_path: Path,
) -> None:
    """One study says F, three say M: the patient counts under unknown (not under whichever
    was read first) and the ingest report names the conflict; agreeing studies settle it."""
    src = tmp_path / "src"
    for i, sex in enumerate(["F", "M", "M", "M"]):
        ds = make_ct(patient_id="MRN-1", instance=1)
        ds.PatientSex = sex
        save(ds, src / f"{i}.dcm")
    for i in range(2):
        ds = make_ct(patient_id="MRN-2", instance=1)
        ds.PatientSex = ["M", ""][i]
        save(ds, src / f"agree{i}.dcm")
    node = make_node(tmp_path)
    report = ingest_images([src], node.store, node.ctx, node.cas, node.quarantine, progress=False)
    assert report.ingested == 6
    with node.store.reading() as con:
        sexes = dict(con.execute("SELECT id, sex FROM patient").fetchall())
    assert sexes == {node.ctx.pseudonym("MRN-1"): "unknown", node.ctx.pseudonym("MRN-2"): "male"}
    assert len(report.conflicts) == 1 and "female/male" in report.conflicts[0]


def test_a_quarantined_file_is_tried_again_not_reported_as_stored(tmp_path: Path) -> None:
    """A rerun retries what an earlier run quarantined (the rules may have changed since):
    it is not counted as "already stored", and its ledger and quarantine rows are replaced,
    not doubled."""
    src = tmp_path / "src"
    leaky = make_ct(patient_id="MRN-77", instance=1)
    leaky.SeriesDescription = f"redo {PHI['name_family']}"  # the gate quarantines it
    save(leaky, src / "leaky.dcm")
    save(make_ct(patient_id="MRN-78", instance=1), src / "clean.dcm")
    node = make_node(tmp_path)
    first = ingest_images([src], node.store, node.ctx, node.cas, node.quarantine, progress=False)
    assert (first.ingested, first.quarantined_total, first.duplicates) == (1, 1, 0)
    again = ingest_images([src], node.store, node.ctx, node.cas, node.quarantine, progress=False)
    assert (again.ingested, again.quarantined_total, again.duplicates) == (0, 1, 1)
    assert again.retried == 1
    assert "tried again" in str([c for row in again.table().columns for c in row._cells])
    with node.store.reading() as con:
        assert con.execute("SELECT count(*) FROM ingest_ledger").fetchone()[0] == 2
        assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 1


def test_pydicom_warnings_name_the_file(tmp_path: Path) -> None:
    bad = next(p for p in pydicom_test_files() if p.name == "badVR.dcm")
    node = make_node(tmp_path)
    report = ingest_images([bad], node.store, node.ctx, node.cas, node.quarantine, progress=False)
    assert report.warnings and all(w.startswith(f"{bad}: ") for w in report.warnings)
    assert "Invalid value for VR IS" in report.warnings[0]
