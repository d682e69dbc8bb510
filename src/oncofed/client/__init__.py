"""The researcher's Python SDK: `HubClient`, its results (``.to_frame()``) and criteria.

Names are imported on first use, so that the CLI's tables (``oncofed.client.render``) load
without the HTTP client: `oncofed --help` starts at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oncofed.client.hub import HubClient, HubError
    from oncofed.client.results import BeaconResult, SearchResult, Vocabulary
    from oncofed.client.where import WhereError

_HOMES = {
    "HubClient": "hub",
    "HubError": "hub",
    "BeaconResult": "results",
    "SearchResult": "results",
    "Vocabulary": "results",
    "WhereError": "where",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = ["BeaconResult", "HubClient", "HubError", "SearchResult", "Vocabulary", "WhereError"]
