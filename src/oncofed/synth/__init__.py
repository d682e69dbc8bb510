"""The synthetic federation generator: providers, patients with a realistic mix of cancers,
and the files hospitals really hold (DICOM, clinical CSV, FHIR mCODE, VCF), deterministic
from a seed. Used by the demo, the tests and the benchmarks.

    generate_federation(out_dir, providers, patients, seed, ...) -> FederationManifest
    iter_patients(provider_index, n, seed) -> Iterator[PatientRecord]   # in memory, no files
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oncofed.synth.federation import generate_federation
    from oncofed.synth.generate import iter_patients, make_patient_record, make_provider
    from oncofed.synth.manifest import (
        FORMATS,
        FederationManifest,
        ProviderCounts,
        ProviderManifest,
        SynthError,
    )
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

# Where each name lives: imported on first use, so that `oncofed --help` and the model's
# users do not pay for the writers (pydicom, numpy).
_HOMES = {
    "FORMATS": "manifest",
    "SynthError": "manifest",
    "generate_federation": "federation",
    "iter_patients": "generate",
    "make_patient_record": "generate",
    "make_provider": "generate",
    "FederationManifest": "manifest",
    "ProviderCounts": "manifest",
    "ProviderManifest": "manifest",
}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name, "model" if name in __all__ else "")
    if not module:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


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
