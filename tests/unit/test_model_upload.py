"""A model uploaded for external validation must be a torch archive: an empty or wrong file
is refused at the hub with a reason, not sent to every node to fail there."""

from __future__ import annotations

import io
import zipfile

from oncofed.hub.learning.routes import model_file_problem


def _zip(*names: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name in names:
            archive.writestr(name, b"x")
    return buf.getvalue()


def test_torch_archives_pass() -> None:
    # The layout torch.save writes: <name>/data.pkl beside the tensors' storages.
    assert model_file_problem(_zip("archive/data.pkl", "archive/data/0", "archive/version")) is None


def test_empty_garbage_and_foreign_zips_are_refused_with_the_reason() -> None:
    assert model_file_problem(b"") == "the file is empty"
    assert "zip" in (model_file_problem(b"not a model at all") or "")
    assert "data.pkl" in (model_file_problem(_zip("weights.npy")) or "")
