"""De-identification of DICOM images (STANDARDS §6): profile, transformer, leak gate, holds."""

from oncofed.node.deid.deidentify import DeidContext, Deidentified, DeidError, deidentify
from oncofed.node.deid.leakgate import Leak, check_output, collect_identifiers

__all__ = [
    "DeidContext",
    "DeidError",
    "Deidentified",
    "Leak",
    "check_output",
    "collect_identifiers",
    "deidentify",
]
