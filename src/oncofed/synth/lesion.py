"""The learnable label of the synthetic images: a lesion present or absent per patient.

A bright ellipse of varying size, place and contrast over the body phantom and its noise, in
every image series of the patient. Providers differ the way real sites do (non-IID): lesion
prevalence (0.3 / 0.5 / 0.7 cycling over the providers) and scanner noise and gain. The label
leans on stage (later stages carry a lesion more often), so that `oncofed:lesion` is
correlated with the clinical record, as an imaging finding is.

Drawn from a random stream of its own (seed, provider, patient, "lesion"), so adding the label
changed no other field of any patient record.
"""

from __future__ import annotations

from dataclasses import dataclass

from oncofed.synth.ids import rng_for
from oncofed.synth.model import Lesion, Provider

# The clinical export's marker name and its two values.
LESION_MARKER = "LESION"
PRESENT, ABSENT = "present", "absent"

_PREVALENCE = (0.3, 0.5, 0.7)
_NOISE_SD = (0.03, 0.05, 0.04)
_GAIN = (1.0, 0.9, 1.1)
# How stage moves the probability (stage 1 .. 4), added to the provider's prevalence.
_STAGE_SHIFT = {1: -0.15, 2: -0.05, 3: 0.05, 4: 0.15}


@dataclass(frozen=True)
class Scanner:
    """A provider's imaging characteristics: the shift between sites a model must survive."""

    prevalence: float
    noise_sd: float
    gain: float


def scanner_of(provider: Provider) -> Scanner:
    """The provider's lesion prevalence and scanner noise/gain (cycling over three profiles)."""
    i = provider.index % len(_PREVALENCE)
    return Scanner(_PREVALENCE[i], _NOISE_SD[i], _GAIN[i])


def draw_lesion(seed: int, provider: Provider, index: int, stage: int) -> Lesion:
    """Patient `index`'s lesion: present with the provider's prevalence shifted by stage."""
    rng = rng_for(seed, provider.id, index, "lesion")
    p = min(0.95, max(0.05, scanner_of(provider).prevalence + _STAGE_SHIFT.get(stage, 0.0)))
    present = rng.random() < p
    # Drawn in every case so that the geometry of a present lesion does not depend on p.
    x, y = rng.uniform(-0.45, 0.45), rng.uniform(-0.3, 0.3)
    rx, ry = rng.uniform(0.12, 0.25), rng.uniform(0.12, 0.25)
    contrast = rng.uniform(0.15, 0.35)
    if not present:
        return Lesion(present=False)
    return Lesion(True, round(x, 4), round(y, 4), round(rx, 4), round(ry, 4), round(contrast, 4))
