"""`oncofed beacon`: ask the federation's Beacon v2 network (every node's Beacon, through the
hub), with the researcher's visas deciding the granularity each node grants."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from oncofed.cli.common import AsJson, HubUrl, console, fail, hub_client, hub_errors


def _beacon_params(
    params: list[str], gene: str | None, variant: str | None, granularity: str
) -> dict[str, str]:
    out: dict[str, str] = {"requestedGranularity": granularity}
    if gene:
        out["geneId"] = gene
    if variant:
        parts = variant.split(":")
        if len(parts) not in (2, 4) or not parts[0] or not parts[1].isdigit():
            raise fail(f"--variant {variant!r}: write CHROM:POS or CHROM:POS:REF:ALT (1-based POS)")
        if int(parts[1]) < 1:
            raise fail(f"--variant {variant!r}: POS counts from 1, as in VCF")
        out["referenceName"] = parts[0]
        out["start"] = str(int(parts[1]) - 1)  # Beacon v2 positions are 0-based
        if len(parts) == 4:
            out["referenceBases"], out["alternateBases"] = parts[2], parts[3]
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--param {item!r}: write KEY=VALUE, e.g. geneId=KRAS")
        out[key] = value
    return out


def beacon(
    entry: Annotated[
        str,
        typer.Argument(
            help="entry type: individuals, biosamples, g_variants, analyses, runs, cohorts, "
            "datasets"
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="a Beacon v2 query parameter KEY=VALUE (repeat), e.g. geneId=KRAS, "
            "assemblyId=GRCh38, filters=NCIT:C3058, requestedGranularity=boolean"
        ),
    ] = None,
    gene: Annotated[str | None, typer.Option(help="a gene symbol (geneId), e.g. KRAS")] = None,
    variant: Annotated[
        str | None,
        typer.Option(
            help="CHROM:POS:REF:ALT or CHROM:POS, POS 1-based as in VCF (sets referenceName, "
            "start, referenceBases, alternateBases)"
        ),
    ] = None,
    granularity: Annotated[
        str,
        typer.Option(help="boolean, count or record; the nodes cap it by your grants"),
    ] = "count",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the hub")] = 30,
    as_json: AsJson = False,
    hub: HubUrl = None,
) -> None:
    """Ask the federation's Beacon v2 network (every node's Beacon, through the hub)."""
    from oncofed.beacon.wire import ENTRY_TYPES
    from oncofed.client.render import beacon_table

    if entry not in ENTRY_TYPES:
        raise fail(f"unknown Beacon entry type {entry!r}; one of {', '.join(ENTRY_TYPES)}")
    query = _beacon_params(param or [], gene, variant, granularity)
    client = hub_client(hub)
    with hub_errors(f"Beacon {entry}: "):
        response = client.beacon(entry, timeout, **query)
    if as_json:
        console.print_json(json.dumps(response))
        return
    shown = " ".join(f"{k}={v}" for k, v in query.items() if k != "requestedGranularity")
    title = f"Beacon v2 network, {entry}" + (f" {escape(shown)}" if shown else "")
    console.print(beacon_table(response, title))
