"""`oncofed synth`: the command-line face of the generator (thin: parse, call, print).

Mount with `app.command("synth")(synth_command)` in the main CLI, or run this module's own
`app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from oncofed.synth.manifest import FORMATS, SynthError

app = typer.Typer(help="Generate a synthetic cancer-data federation.", add_completion=False)


@app.command()
def synth_command(
    out: Annotated[Path, typer.Argument(help="Directory to write the federation into.")],
    providers: Annotated[int, typer.Option(help="Number of providers (hospitals).")] = 3,
    patients: Annotated[int, typer.Option(help="Patients per provider.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed; same seed, same bytes.")] = 42,
    images: Annotated[bool, typer.Option(help="Write DICOM images (the slow part).")] = True,
    instances: Annotated[int, typer.Option(help="Images per CT/MR/PET series.")] = 3,
    formats: Annotated[
        str, typer.Option(help=f"Comma-separated subset of {','.join(FORMATS)}.")
    ] = ",".join(FORMATS),
    force: Annotated[
        bool, typer.Option(help="Replace a federation previously generated in OUT.")
    ] = False,
) -> None:
    """Write N providers with their DICOM, clinical CSV, FHIR mCODE and VCF files."""
    from oncofed.synth.federation import generate_federation

    console = Console(stderr=True)
    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    try:
        manifest = generate_federation(
            out,
            providers,
            patients,
            seed,
            images=images,
            instances=instances,
            formats=chosen,
            force=force,
        )
    except SynthError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    total = sum(p.counts.patients for p in manifest.providers)
    console.print(
        f"wrote {len(manifest.providers)} providers, {total} patients, "
        f"{manifest.files} files under {out} (manifest: {out / 'federation.json'})"
    )


if __name__ == "__main__":
    app()
