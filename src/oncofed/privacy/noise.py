"""Laplace noise from OpenDP's vetted samplers (discrete Laplace on integer counts).

OpenDP draws from the operating system's cryptographic randomness and cannot be seeded,
which is what we want: noise is drawn once per cell and cached (see
:mod:`oncofed.privacy.ledger`), never recomputed from a seed an attacker could guess.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LaplaceSampler:
    """Integer noise ``Z`` with ``P(Z = k) ∝ exp(-|k| / scale)``, via ``dp.m.make_laplace``."""

    def __init__(self) -> None:
        self._measurements: dict[float, Callable[[int], Any]] = {}
        self._lock = threading.Lock()

    def _measurement(self, scale: float) -> Callable[[int], Any]:
        with self._lock:
            meas = self._measurements.get(scale)
            if meas is None:
                import opendp.prelude as dp

                dp.enable_features("contrib")
                meas = dp.m.make_laplace(
                    dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=scale
                )
                self._measurements[scale] = meas
            return meas

    def sample(self, scale: float) -> int:
        """One draw centred on zero; ``scale`` is sensitivity / epsilon."""
        if scale <= 0:
            return 0
        return int(self._measurement(float(scale))(0))
