"""The node store: one DuckDB file holding the common data model of STANDARDS §7.

DuckDB is columnar, so the aggregate counts that federated search asks for stay fast at
100,000 patients. A DuckDB file admits one writing process at a time; the node service and
the ingest command therefore open short-lived connections through :meth:`NodeStore.connect`,
which waits (with a deadline) for the other side to finish instead of failing at once.

Every patient-level row is keyed by the patient's *pseudonym* (a keyed hash computed at the
node, see :mod:`oncofed.security.pseudonym`); the source identifier is never stored here.
Dates are stored as coarse values (year, year-month) or as days from a baseline (the
diagnosis), never as full calendar dates of birth.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from oncofed.query.ast import Operation
    from oncofed.query.columnar import ColumnarSearch
    from oncofed.query.counts import DatasetCounts

SCHEMA_VERSION = 1

# Each statement is idempotent so that `migrate` can run on every open.
SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)""",
    # Datasets (EUCAIM "collections"): what the catalogue lists and search counts per.
    """CREATE TABLE IF NOT EXISTS dataset (
        id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        description VARCHAR NOT NULL DEFAULT '',
        access_level VARCHAR NOT NULL DEFAULT 'registered',  -- public | registered | controlled
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    )""",
    """CREATE TABLE IF NOT EXISTS patient (
        id VARCHAR PRIMARY KEY,              -- pseudonym
        dataset_id VARCHAR NOT NULL,
        sex VARCHAR NOT NULL DEFAULT 'unknown',  -- male | female | other | unknown
        birth_year INTEGER,
        source VARCHAR                       -- which importer created the row
    )""",
    # mCODE PrimaryCancerCondition. Dates are days relative to the diagnosis (day 0) or
    # coarse (year); age_at_diagnosis is computed before dates were coarsened.
    """CREATE TABLE IF NOT EXISTS disease (
        id VARCHAR PRIMARY KEY,
        patient_id VARCHAR NOT NULL,
        icd10 VARCHAR,                       -- e.g. C34.1
        topography VARCHAR,                  -- ICD-O-3 topography, e.g. C34.1
        morphology VARCHAR,                  -- ICD-O-3 morphology, e.g. 8140/3
        site_snomed VARCHAR,                 -- EUCAIM diagnosis code, e.g. 363358000 (lung)
        diagnosis_year INTEGER,
        age_at_diagnosis INTEGER,
        t_stage VARCHAR, n_stage VARCHAR, m_stage VARCHAR,
        stage_group VARCHAR                  -- e.g. I, IIA, IIIB, IV
    )""",
    """CREATE TABLE IF NOT EXISTS tumour (
        id VARCHAR PRIMARY KEY,
        patient_id VARCHAR NOT NULL,
        disease_id VARCHAR,
        body_site VARCHAR,
        laterality VARCHAR,
        size_mm DOUBLE
    )""",
    # Tumour markers and other observations (ER/PR/HER2, PSA, PD-L1, ...).
    """CREATE TABLE IF NOT EXISTS biomarker (
        id VARCHAR PRIMARY KEY,
        patient_id VARCHAR NOT NULL,
        disease_id VARCHAR,
        name VARCHAR NOT NULL,
        value_code VARCHAR,
        value_number DOUBLE,
        day INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS treatment (
        id VARCHAR PRIMARY KEY,
        patient_id VARCHAR NOT NULL,
        disease_id VARCHAR,
        kind VARCHAR NOT NULL,               -- surgery | radiotherapy | chemotherapy | ...
        agent VARCHAR,
        start_day INTEGER,
        end_day INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS outcome (
        patient_id VARCHAR PRIMARY KEY,
        vital_status VARCHAR NOT NULL,       -- alive | deceased | unknown
        survival_days INTEGER,               -- days from diagnosis to death or last contact
        event BOOLEAN                        -- true when survival_days ends in death
    )""",
    """CREATE TABLE IF NOT EXISTS imaging_study (
        uid VARCHAR PRIMARY KEY,             -- de-identified StudyInstanceUID
        patient_id VARCHAR NOT NULL,
        study_month VARCHAR,                 -- YYYY-MM after coarsening
        description VARCHAR,
        age_at_study INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS imaging_series (
        uid VARCHAR PRIMARY KEY,             -- de-identified SeriesInstanceUID
        study_uid VARCHAR NOT NULL,
        patient_id VARCHAR NOT NULL,
        modality VARCHAR,                    -- DICOM code: CT, MR, PT, ...
        body_part VARCHAR,                   -- BodyPartExamined as written
        manufacturer VARCHAR,
        model VARCHAR,
        series_month VARCHAR,
        description VARCHAR,
        slice_thickness DOUBLE,
        rows_ INTEGER,
        columns_ INTEGER,
        num_instances INTEGER NOT NULL DEFAULT 0,
        seg_source_series_uid VARCHAR        -- for DICOM-SEG: the series it annotates
    )""",
    """CREATE TABLE IF NOT EXISTS imaging_instance (
        sop_uid VARCHAR PRIMARY KEY,
        series_uid VARCHAR NOT NULL,
        sop_class_uid VARCHAR,
        content_hash VARCHAR NOT NULL,       -- sha256 of the de-identified file (its CAS key)
        size_bytes BIGINT
    )""",
    """CREATE TABLE IF NOT EXISTS biosample (
        id VARCHAR PRIMARY KEY,              -- pseudonymised sample id
        patient_id VARCHAR NOT NULL,
        sample_type VARCHAR,                 -- tumour | normal | blood ...
        collection_day INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS variant (
        id VARCHAR PRIMARY KEY,              -- assembly:chrom:pos:ref:alt
        assembly VARCHAR NOT NULL DEFAULT 'GRCh38',
        chrom VARCHAR NOT NULL,
        pos BIGINT NOT NULL,                 -- 1-based VCF position
        ref VARCHAR NOT NULL,
        alt VARCHAR NOT NULL,
        variant_type VARCHAR,                -- SNV | INDEL | MNV ...
        gene VARCHAR,
        consequence VARCHAR,
        hgvs_p VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS variant_call (
        variant_id VARCHAR NOT NULL,
        biosample_id VARCHAR NOT NULL,
        patient_id VARCHAR NOT NULL,
        genotype VARCHAR,                    -- 0/1, 1/1 ...
        zygosity VARCHAR                     -- heterozygous | homozygous
    )""",
    # The ingest ledger: one row per source file (by content hash) so that a rerun skips
    # what is done and completes what is not.
    """CREATE TABLE IF NOT EXISTS ingest_ledger (
        source_hash VARCHAR PRIMARY KEY,
        source_path VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,               -- dicom | csv | fhir | omop | vcf
        status VARCHAR NOT NULL,             -- ingested | duplicate | quarantined | held
        records INTEGER NOT NULL DEFAULT 0,
        detail VARCHAR,
        recorded_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    )""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        source_hash VARCHAR PRIMARY KEY,
        source_path VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,             -- short machine-readable reason
        detail VARCHAR,                      -- what a person needs to act on it
        recorded_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    )""",
    "CREATE INDEX IF NOT EXISTS disease_patient ON disease(patient_id)",
    "CREATE INDEX IF NOT EXISTS series_patient ON imaging_series(patient_id)",
    "CREATE INDEX IF NOT EXISTS call_variant ON variant_call(variant_id)",
    "CREATE INDEX IF NOT EXISTS call_patient ON variant_call(patient_id)",
    "CREATE INDEX IF NOT EXISTS variant_pos ON variant(chrom, pos)",
    # Issue 4 (clinical and genomic import, Beacon v2): treatment codes and intent, grade,
    # the dataset of a biosample and of a variant call (a patient's images, clinical records
    # and variants may sit in different datasets), every gene an annotation names, and per
    # variant and dataset the number of calls (what Beacon boolean/count answers read).
    "ALTER TABLE treatment ADD COLUMN IF NOT EXISTS code VARCHAR",
    "ALTER TABLE treatment ADD COLUMN IF NOT EXISTS code_system VARCHAR",
    "ALTER TABLE treatment ADD COLUMN IF NOT EXISTS intent VARCHAR",
    "ALTER TABLE disease ADD COLUMN IF NOT EXISTS grade VARCHAR",
    "ALTER TABLE biosample ADD COLUMN IF NOT EXISTS dataset_id VARCHAR",
    "ALTER TABLE variant_call ADD COLUMN IF NOT EXISTS dataset_id VARCHAR",
    # The ledger keys an import by its content *and* dataset (issue 14).
    "ALTER TABLE ingest_ledger ADD COLUMN IF NOT EXISTS dataset_id VARCHAR",
    # Issue 16: the PatientSex each study was written with, so that studies that disagree
    # about a patient are found (the patient's sex is then unknown; see ingest/images.py).
    "ALTER TABLE imaging_study ADD COLUMN IF NOT EXISTS patient_sex VARCHAR",
    """CREATE TABLE IF NOT EXISTS variant_gene (
        variant_id VARCHAR NOT NULL,
        gene VARCHAR NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS variant_dataset (
        variant_id VARCHAR NOT NULL,
        dataset_id VARCHAR NOT NULL,
        calls BIGINT NOT NULL,
        PRIMARY KEY (variant_id, dataset_id)
    )""",
    "CREATE INDEX IF NOT EXISTS variant_gene_gene ON variant_gene(gene)",
    "CREATE INDEX IF NOT EXISTS variant_gene_variant ON variant_gene(variant_id)",
    "CREATE INDEX IF NOT EXISTS biosample_patient ON biosample(patient_id)",
    "CREATE INDEX IF NOT EXISTS treatment_patient ON treatment(patient_id)",
    # Change tracking for the derived search index (oncofed.query.compile.SEARCH_INDEX):
    # every write transaction appends a row here (appends never conflict), and the index
    # records how many rows it was built from; a difference means it must be rebuilt.
    """CREATE TABLE IF NOT EXISTS store_change (
        changed_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    )""",
    """CREATE TABLE IF NOT EXISTS search_index_state (
        built_changes BIGINT NOT NULL        -- rows of store_change the index reflects
    )""",
)

_RECORD_CHANGE = "INSERT INTO store_change DEFAULT VALUES"

# Writes committed per store file by this process (see NodeStore.generation): shared by
# every NodeStore of the same file, so a write through one is seen by the others.
_GENERATIONS: dict[str, int] = {}
_GENERATIONS_LOCK = threading.Lock()


class StoreBusyError(RuntimeError):
    """Another process holds the store (DuckDB admits one writing process at a time)."""


class NodeStore:
    """A node's DuckDB store, opened once per process and shared by its threads.

    Opening a DuckDB database costs tens of milliseconds, far above the latency budget of a
    federated query, so a process opens it once and hands each thread its own cursor. Only
    one process may hold the file: the running node service owns it, and command-line
    ingest talks to that service when it is up (see :mod:`oncofed.node.ingest`).
    """

    def __init__(self, path: Path, threads: int = 0) -> None:
        self.path = path
        # DuckDB worker threads; 0: DuckDB's default (one per core). Nodes sharing few cores
        # answer faster with 1: one small query gains nothing from parallel operators.
        self.threads = threads
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._key = str(path.resolve())
        # The search index held in memory (see search_counts), loaded on first use.
        self._search: ColumnarSearch | None = None

    @property
    def generation(self) -> int:
        """How many writes this process has committed to the store file (any instance).

        DuckDB lets one process at a time open a store for writing, so in the process
        holding it this number moves with every change: whatever is derived from the data
        (dataset summaries, the in-memory search index) can be kept per generation.
        """
        return _GENERATIONS.get(self._key, 0)

    def _bump(self) -> None:
        with _GENERATIONS_LOCK:
            _GENERATIONS[self._key] = _GENERATIONS.get(self._key, 0) + 1

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self._con = duckdb.connect(
                        str(self.path),
                        config={
                            "autoload_known_extensions": False,
                            "autoinstall_known_extensions": False,
                            **({"threads": self.threads} if self.threads > 0 else {}),
                        },
                    )
                except duckdb.IOException as exc:
                    if "lock" in str(exc).lower():
                        raise StoreBusyError(
                            f"the node store {self.path} is held by another process, most "
                            "likely the running node service (`oncofed node serve`); stop it "
                            "or send the work through it"
                        ) from exc
                    raise
                for statement in SCHEMA:
                    self._con.execute(statement)
                row = self._con.execute("SELECT max(version) FROM schema_version").fetchone()
                if row is None or row[0] is None:
                    self._con.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION])
            return self._con

    def migrate(self) -> None:
        """Create or upgrade the schema (done on first use as well)."""
        self._connection()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread; close it when done (or use :meth:`reading`)."""
        return self._connection().cursor()

    @contextlib.contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read cursor kept per thread: making a DuckDB cursor costs milliseconds."""
        cur = getattr(self._local, "cursor", None)
        if cur is None or self._con is None:
            cur = self.cursor()
            self._local.cursor = cur
        yield cur

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All-or-nothing writes: a batch or file is stored completely or not at all.

        Each transaction is recorded as a store change, which marks the search index stale
        (rebuilt on the next search, see :func:`oncofed.query.counts.count_matches`), and
        with it the in-memory copy :meth:`search_counts` reads.
        """
        cur = self.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur
            cur.execute(_RECORD_CHANGE)
        except BaseException:
            cur.execute("ROLLBACK")
            cur.close()
            raise
        cur.execute("COMMIT")
        cur.close()
        self._bump()

    def invalidate_search_index(self) -> None:
        """Mark the search index stale; for writers that commit outside :meth:`transaction`."""
        cur = self.cursor()
        try:
            cur.execute(_RECORD_CHANGE)
        finally:
            cur.close()
        self._bump()

    def refresh_search_index(self, *, force: bool = False) -> bool:
        """Rebuild the search index now if the store changed (else the next search does)."""
        from oncofed.query.counts import rebuild_search_index

        cur = self.cursor()
        try:
            return rebuild_search_index(cur, force=force)
        finally:
            cur.close()

    def search_counts(self, op: Operation, max_studies: int | None = None) -> list[DatasetCounts]:
        """Exact raw counts of a canonical query per dataset, for federated search.

        The same numbers as :func:`oncofed.query.counts.count_matches`, counted in memory
        over the search index (:mod:`oncofed.query.columnar`): several times cheaper than
        the SQL statement, which matters where many nodes share few cores. The in-memory
        copy follows every store change (checked on each call) and holds no answers.
        """
        from oncofed.query.columnar import ColumnarSearch

        with self._lock:
            if self._search is None:
                self._search = ColumnarSearch()
            search = self._search
        generation = self.generation  # read before the check, so a write after it counts
        with self.reading() as con:
            return search.counts(con, op, generation, max_studies)

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
            self._local = threading.local()
            self._search = None

    def datasets(self) -> list[dict[str, object]]:
        """Datasets with their raw sizes (the caller applies disclosure control)."""
        with self.reading() as con:
            rows = con.execute(
                """
                SELECT d.id, d.name, d.description, d.access_level,
                       (SELECT count(*) FROM patient p WHERE p.dataset_id = d.id)
                FROM dataset d ORDER BY d.id
                """
            ).fetchall()
        return [
            {
                "id": r[0],
                "name": r[1],
                "description": r[2],
                "access_level": r[3],
                "patients": int(r[4]),
            }
            for r in rows
        ]
