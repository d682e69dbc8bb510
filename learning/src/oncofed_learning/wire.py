"""Weights as bytes: an ArrayRecord (or a list of arrays) in NumPy's `.npz` format.

`.npz` without pickles is data only (`allow_pickle=False` on read): a weights blob cannot
carry code, unlike a pickled `torch.save` file. Array order is kept by the `a00000_` prefix.
The blob's SHA-256 is its name at the hub's content-addressed store.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from flwr.app import Array, ArrayRecord


def to_bytes(arrays: ArrayRecord) -> bytes:
    names = list(arrays.keys())
    ndarrays = arrays.to_numpy_ndarrays()
    buffer = io.BytesIO()
    named = zip(names, ndarrays, strict=True)
    np.savez(buffer, **{f"a{i:05d}_{n}": a for i, (n, a) in enumerate(named)})
    return buffer.getvalue()


def from_bytes(data: bytes) -> ArrayRecord:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        keys = sorted(npz.files)
        return ArrayRecord({k.split("_", 1)[1]: Array(npz[k]) for k in keys})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
