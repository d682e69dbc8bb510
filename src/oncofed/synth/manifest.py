"""The ground truth of a generated federation: `provider.json` per provider and the
top-level `federation.json`, which tests and demos read instead of re-deriving counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from oncofed.synth.model import PatientRecord, Provider

# The kinds of files a federation can hold (here, not in `federation`, so that the command's
# help is built without importing the writers and pydicom).
FORMATS: tuple[str, ...] = ("dicom", "clinical", "fhir", "vcf")


class SynthError(Exception):
    """A request the generator refuses, with a message that says what to do instead."""


@dataclass
class ProviderCounts:
    """What was generated and written for one provider."""

    patients: int = 0
    sequenced: int = 0
    studies: int = 0
    series: int = 0
    by_site: Counter[str] = field(default_factory=Counter)
    by_sex: Counter[str] = field(default_factory=Counter)
    by_modality: Counter[str] = field(default_factory=Counter)
    vital_status: Counter[str] = field(default_factory=Counter)
    treatments: int = 0
    variant_calls: int = 0
    dicom_files: int = 0
    fhir_files: int = 0
    csv_rows: dict[str, int] = field(default_factory=dict)
    vcf_files: list[str] = field(default_factory=list)
    vcf_records: int = 0
    files: int = 0

    def add(self, record: PatientRecord) -> None:
        """Count one patient's records (not the files; the writers report those)."""
        self.patients += 1
        self.sequenced += record.sequenced
        self.studies += len(record.studies)
        self.by_site[record.diagnosis.site] += 1
        self.by_sex[record.patient.sex] += 1
        self.vital_status[record.outcome.vital_status] += 1
        self.treatments += len(record.treatments)
        self.variant_calls += len(record.variants)
        for study in record.studies:
            self.series += len(study.series)
            for series in study.series:
                self.by_modality[series.modality] += 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("by_site", "by_sex", "by_modality", "vital_status"):
            data[key] = dict(sorted(getattr(self, key).items()))
        return data


@dataclass
class ProviderManifest:
    """One provider: who it is, where its files are, and what they hold."""

    id: str
    name: str
    country: str
    city: str
    path: str
    counts: ProviderCounts

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "country": self.country,
            "city": self.city,
            "path": self.path,
            "counts": self.counts.to_dict(),
        }

    @classmethod
    def of(cls, provider: Provider, counts: ProviderCounts) -> ProviderManifest:
        return cls(provider.id, provider.name, provider.country, provider.city, provider.id, counts)


@dataclass
class FederationManifest:
    """The whole federation, as written to `federation.json`."""

    seed: int
    arguments: dict[str, Any]
    providers: list[ProviderManifest]
    generator: str = "oncofed.synth 1"

    @property
    def files(self) -> int:
        """Files written under the provider folders (not counting federation.json)."""
        return sum(p.counts.files for p in self.providers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator,
            "seed": self.seed,
            "arguments": self.arguments,
            "files": self.files,
            "providers": [p.to_dict() for p in self.providers],
        }
