"""The hub's answers as the SDK returns them: the JSON as a ``dict`` (nothing hidden, nothing
renamed), plus ``.to_frame()`` for a pandas DataFrame of what a notebook plots or joins.

A withheld count stays withheld in a frame: ``patients`` is missing (``<NA>``) and
``patients_below`` says "fewer than this", never a made-up number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:  # pragma: no cover - pandas is a dependency
        raise ImportError("to_frame() needs pandas: pip install pandas") from exc
    return pandas


def _frame(rows: list[dict[str, Any]], columns: list[str], counts: tuple[str, ...]) -> pd.DataFrame:
    frame = _pandas().DataFrame(rows, columns=columns)
    for column in counts:
        frame[column] = frame[column].astype("Int64")  # a missing count is <NA>, not 0.0
    return frame


SEARCH_COLUMNS = [
    "provider",
    "status",
    "dataset",
    "dataset_name",
    "patients",
    "patients_below",
    "studies",
    "studies_below",
    "sex",
    "age_from",
    "age_to",
    "modalities",
    "body_parts",
]


class SearchResult(dict[str, Any]):
    """A federated search's answer: per provider its status and, per dataset, the counts
    its node released (disclosure-controlled: noised, rounded, withheld below k)."""

    def to_frame(self) -> pd.DataFrame:
        """One row per provider and dataset; a provider that did not answer is one row with
        its status and no counts."""
        rows: list[dict[str, Any]] = []
        for p in self.get("providers", []):
            collections = p.get("collections") or [{}]
            for c in collections:
                age = c.get("age_range") or {}
                rows.append(
                    {
                        "provider": p.get("provider"),
                        "status": p.get("status"),
                        "dataset": c.get("id"),
                        "dataset_name": c.get("name"),
                        "patients": c.get("subjects_count"),
                        "patients_below": c.get("subjects_count_below"),
                        "studies": c.get("studies_count"),
                        "studies_below": c.get("studies_count_below"),
                        "sex": ", ".join(c.get("gender", [])),
                        "age_from": age.get("min"),
                        "age_to": age.get("max"),
                        "modalities": ", ".join(c.get("modalities", [])),
                        "body_parts": ", ".join(c.get("body_parts", [])),
                    }
                )
        counts = ("patients", "patients_below", "studies", "studies_below", "age_from", "age_to")
        return _frame(rows, SEARCH_COLUMNS, counts)


class BeaconResult(dict[str, Any]):
    """A Beacon v2 network answer (the hub's merge of every node's Beacon)."""

    def to_frame(self) -> pd.DataFrame:
        """One row per node: its status, whether it found anything and how many (a count
        only where the node released one)."""
        rows = [
            {
                "node": n.get("node"),
                "status": n.get("status"),
                "exists": n.get("exists"),
                "count": n.get("numTotalResults"),
                "note": n.get("note") or n.get("error") or "",
            }
            for n in self.get("info", {}).get("nodes", [])
        ]
        return _frame(rows, ["node", "status", "exists", "count", "note"], ("count",))

    def records(self) -> pd.DataFrame:
        """The records of a ``record``-granularity answer (one row each, with the result
        set it came from), flattened one level; empty where no grant allowed records."""
        pandas = _pandas()
        rows: list[dict[str, Any]] = []
        for result_set in self.get("response", {}).get("resultSets", []):
            for record in result_set.get("results", []):
                rows.append({"dataset": result_set.get("id"), **record})
        return pandas.json_normalize(rows, max_level=1) if rows else pandas.DataFrame()


class Vocabulary(dict[str, Any]):
    """The search keys the hub understands, with their labels and allowed values."""

    def to_frame(self) -> pd.DataFrame:
        """One row per key and allowed value: codes next to their labels (a key without a
        closed list of values is one row, its unit or examples in ``value_label``)."""
        rows: list[dict[str, Any]] = []
        for k in self.get("keys", []):
            base = {"key": k["key"], "label": k["label"], "level": k.get("level")}
            values = k.get("values") or []
            for v in values:
                rows.append({**base, "value": v["code"], "value_label": v["label"]})
            if not values:
                hint = k.get("unit") or ", ".join(k.get("examples", []))
                rows.append({**base, "value": None, "value_label": hint or None})
        return _frame(rows, ["key", "label", "level", "value", "value_label"], ())
