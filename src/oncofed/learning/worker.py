"""Finding and starting the learning worker (the `oncofed-learning` venv's Python).

The venv is `.venv-learning` beside the checkout (what `make learning` creates) unless
`ONCOFED_LEARNING_PYTHON` names another interpreter.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ENV_PYTHON = "ONCOFED_LEARNING_PYTHON"
MODULE = "oncofed_learning.worker"


class WorkerMissing(RuntimeError):
    pass


def learning_python() -> Path:
    """The interpreter of the learning venv; WorkerMissing says how to install it."""
    named = os.environ.get(ENV_PYTHON)
    if named:
        path = Path(named)
        if not path.exists():
            raise WorkerMissing(f"{ENV_PYTHON}={named} does not exist")
        return path
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / ".venv-learning" / "bin" / "python"
        if candidate.exists():
            return candidate
    raise WorkerMissing(
        "the learning worker is not installed: run `make learning` in the oncofed checkout "
        f"(it creates .venv-learning), or set {ENV_PYTHON} to its Python"
    )


def start(mode: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start the worker in `mode` (`coordinate` or `client`), pipes open, text mode.

    Its environment is the minimum it needs: no proxies, no credentials of the parent.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd or Path.cwd()),
        "ONCOFED_LEARNING_THREADS": os.environ.get("ONCOFED_LEARNING_THREADS", "1"),
        "FLWR_TELEMETRY_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [str(learning_python()), "-m", MODULE, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )
