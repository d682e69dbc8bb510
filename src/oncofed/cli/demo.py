"""`oncofed demo`: a hub and nodes on loopback with synthetic data, the federation at work.

`oncofed synth` (the generator's own command, `oncofed.synth.cli`) is mounted beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oncofed.cli.common import console


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="where the demo keeps its files")] = Path(
        "demo-data"
    ),
    nodes_: Annotated[int, typer.Option("--nodes", min=1, max=10)] = 3,
    patients: Annotated[int, typer.Option(help="synthetic patients per provider")] = 40,
    once: Annotated[bool, typer.Option(help="exit after the sample run (for tests)")] = False,
    fresh: Annotated[bool, typer.Option(help="delete an earlier demo directory first")] = True,
) -> None:
    """Start a hub and nodes on loopback with synthetic data and show the federation working."""
    from oncofed.demo import run_demo

    raise typer.Exit(run_demo(directory, nodes_, patients, once, fresh, console))
