"""The synthetic federation generator: providers, patients with a realistic mix of cancers,
and the files hospitals really hold (DICOM, clinical CSV, FHIR mCODE, VCF), deterministic
from a seed. Used by the demo, the tests and the benchmarks.

    generate_federation(out_dir, providers, patients, seed, ...) -> FederationManifest
    iter_patients(provider_index, n, seed) -> Iterator[PatientRecord]   # in memory, no files
"""

from oncofed.synth.federation import FORMATS, SynthError, generate_federation
from oncofed.synth.generate import iter_patients, make_patient_record, make_provider
from oncofed.synth.manifest import FederationManifest, ProviderCounts, ProviderManifest
from oncofed.synth.model import (
    Diagnosis,
    ImagingSeries,
    ImagingStudy,
    Outcome,
    Patient,
    PatientRecord,
    Provider,
    Treatment,
    VariantCall,
)

__all__ = [
    "FORMATS",
    "Diagnosis",
    "FederationManifest",
    "ImagingSeries",
    "ImagingStudy",
    "Outcome",
    "Patient",
    "PatientRecord",
    "Provider",
    "ProviderCounts",
    "ProviderManifest",
    "SynthError",
    "Treatment",
    "VariantCall",
    "generate_federation",
    "iter_patients",
    "make_patient_record",
    "make_provider",
]
