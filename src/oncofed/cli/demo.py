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
    # 150: enough that the demo's example searches are released at every provider, little
    # enough that the first start stays under a minute on two cores (oncofed.demo.EXAMPLES).
    patients: Annotated[
        int, typer.Option(help="synthetic patients per provider (a new demo only)")
    ] = 150,
    once: Annotated[
        bool, typer.Option("--once", help="exit after the sample run (for tests)")
    ] = False,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="start from nothing (new data, ports and passwords) instead of reusing --dir",
        ),
    ] = False,
) -> None:
    """Start a hub and nodes on loopback with synthetic data and show the federation working.

    The demo keeps its state in --dir: run it again and it restarts the same federation (same
    address, passwords, saved queries and access requests) unless you pass --fresh."""
    from oncofed.demo import run_demo

    raise typer.Exit(run_demo(directory, nodes_, patients, once, fresh, console))
