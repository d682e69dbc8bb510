"""DICOM slices as model inputs: one channel, fixed size, values in [0, 1].

Windowing (documented, the same at every node):
- CT: Hounsfield units (stored value x RescaleSlope + RescaleIntercept) through the window
  [-1024, 3071] HU, i.e. the full 12-bit range. Soft-tissue windows (40/400) would clip the
  bright lesions this catalogue is trained to find.
- other modalities (MR, PT, MG): the stored value divided by its largest representable
  value (2**BitsStored - 1): no per-image min/max, so that intensity means the same thing in
  every image of a scanner.
Then bilinear resampling (anti-aliased) to IMAGE_SIZE x IMAGE_SIZE. Multi-frame objects use
their middle frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import torch
import torch.nn.functional as F

from oncofed_learning.catalogue import IMAGE_SIZE

CT_WINDOW = (-1024.0, 3071.0)


class ImageError(ValueError):
    """A file that cannot be turned into a model input; names the file and the reason."""


def window(ds: pydicom.Dataset) -> np.ndarray:
    """The pixel data of `ds` windowed into [0, 1] as float32."""
    try:
        pixels = ds.pixel_array.astype(np.float32)
    except Exception as exc:  # pydicom raises several types for unreadable pixel data
        raise ImageError(f"no readable pixel data ({exc})") from exc
    if pixels.ndim == 3:
        pixels = pixels[pixels.shape[0] // 2]
    if pixels.ndim != 2:
        raise ImageError(f"expected one grey-scale frame, got shape {pixels.shape}")
    if ds.get("Modality") == "CT":
        hu = pixels * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        low, high = CT_WINDOW
        return np.clip((hu - low) / (high - low), 0.0, 1.0)
    top = float(2 ** int(ds.get("BitsStored", 16)) - 1)
    return np.clip(pixels / top, 0.0, 1.0)


def load_slice(path: Path, size: int = IMAGE_SIZE) -> torch.Tensor:
    """One file as a 1 x size x size tensor."""
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise ImageError(f"{path}: not a readable DICOM file ({exc})") from exc
    try:
        array = window(ds)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from exc
    tensor = torch.from_numpy(array)[None, None]
    if tensor.shape[-2:] != (size, size):
        tensor = F.interpolate(
            tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    return tensor[0]
