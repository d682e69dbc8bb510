"""The learning worker: the process the hub and the node start in the learning venv.

Two modes, each speaking JSON lines on stdin/stdout (stderr is the log):

- `coordinate` (at the hub, one process per training run): reads the run on its first line,
  runs the Flower strategy over `OncofedGrid`, and for each round writes
  `{"op": "round", ...}` and reads the hub's `{"replies": ...}` back. Weights go through the
  hub's content-addressed blob folder, named by SHA-256 and checked on read. Ends with
  `{"op": "done", ...}` or `{"op": "failed", "error": ...}`.
- `client` (at the node, one process per task): reads one request, runs the node's ClientApp
  (or external validation) on the case list the node selected, writes one reply. It reads
  images and the weights file it is given and writes only the reply weights file.

The worker has no network of its own: it talks only to its parent through its pipes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

import torch
from flwr.app import ArrayRecord

from oncofed_learning import catalogue, wire
from oncofed_learning.flower_adapter import OncofedGrid, Reply, RoundFailed, call_client_app
from oncofed_learning.server_app import RunSpec, train_federated

MODEL_FORMAT = "oncofed-model/1"


class BlobDir:
    """The hub's content-addressed blob folder: `<root>/<sha[:2]>/<sha>`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{digest}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return digest

    def get(self, digest: str) -> bytes:
        data = self.path(digest).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"blob {digest} does not match its hash")
        return data


def save_model(
    path: Path | None, model: str, arrays: ArrayRecord, provenance: dict[str, Any]
) -> bytes:
    """The final model file: a torch archive of tensors and strings only, so that
    `torch.load(..., weights_only=True)` reads it without running any code."""
    import io

    buffer = io.BytesIO()
    torch.save(
        {
            "format": MODEL_FORMAT,
            "model": catalogue.entry(model).id,
            "state_dict": arrays.to_torch_state_dict(),
            "provenance": json.dumps(provenance, sort_keys=True),
        },
        buffer,
    )
    data = buffer.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data


def load_model(path: Path) -> tuple[str, torch.nn.Module, dict[str, Any]]:
    """A model file written by `save_model`: (catalogue id, model, provenance)."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not an oncofed model file ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not an oncofed model file (format {MODEL_FORMAT} expected)")
    name = str(raw["model"])
    model = catalogue.build(name)
    model.load_state_dict(raw["state_dict"])
    return name, model, json.loads(raw.get("provenance") or "{}")


def _send(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def coordinate(inp: IO[str], out: IO[str]) -> int:
    """Run one training run for the hub (see the module docstring)."""
    run = json.loads(inp.readline())
    blobs = BlobDir(Path(run["blob_dir"]))
    sites: list[str] = list(run["sites"])
    ids = {name: i + 1 for i, name in enumerate(sites)}
    names = {i: name for name, i in ids.items()}
    spec = RunSpec(**run["spec"])
    bytes_moved = [0]

    def transport(
        message_type: str,
        group: str,
        arrays: ArrayRecord | None,
        config: dict[str, Any],
        nodes: list[int],
        timeout: float | None,
    ) -> dict[int, Reply]:
        weights = None
        if arrays is not None:
            data = wire.to_bytes(arrays)
            weights = blobs.put(data)
            bytes_moved[0] += len(data) * len(nodes)
        _send(
            out,
            {
                "op": "round",
                "message_type": message_type,
                # FedAvg leaves the group id empty and puts the round in the config.
                "round": int(config.get("server-round", group or 0)),
                "sites": [names[n] for n in nodes],
                "weights": weights,
                "config": config,
                "timeout": timeout,
            },
        )
        line = inp.readline()
        if not line:
            raise RoundFailed("the hub closed the run")
        answers: dict[int, Reply] = {}
        for name, raw in json.loads(line)["replies"].items():
            reply = Reply(
                metrics=raw.get("metrics") or {},
                error=raw.get("error"),
                refused=bool(raw.get("refused")),
            )
            if raw.get("weights"):
                data = blobs.get(raw["weights"])
                bytes_moved[0] += len(data)
                reply.arrays = wire.from_bytes(data)
            answers[ids[name]] = reply
        return answers

    started = time.monotonic()
    try:
        grid = OncofedGrid(
            list(names),
            transport,
            spec.min_sites,
            run_id=int(run.get("flower_run_id", 1)),
            names=names,
        )
        arrays, history = train_federated(grid, spec, len(sites))
    except (RoundFailed, ValueError) as exc:
        _send(out, {"op": "failed", "error": str(exc)})
        return 1
    weights = blobs.put(wire.to_bytes(arrays))
    provenance = {**run.get("provenance", {}), "weights_sha256": weights}
    model = blobs.put(save_model(None, spec.model, arrays, provenance))
    _send(
        out,
        {
            "op": "done",
            "model": model,
            "weights": weights,
            "history": {"train": history.train, "evaluate": history.evaluate},
            "seconds": round(time.monotonic() - started, 3),
            "bytes_moved": bytes_moved[0],
        },
    )
    return 0


def client(inp: IO[str], out: IO[str]) -> int:
    """Answer one node task (see the module docstring)."""
    from oncofed_learning import client_app, data

    request = json.loads(inp.readline())
    kind = request["message_type"]
    node_config = request["node_config"]
    if kind == "validate":
        try:
            _, model, _ = load_model(Path(request["model_file"]))
            cases = data.read_cases(Path(node_config["cases"]))
            report = client_app.validate(
                model,
                cases,
                float(request["config"].get("threshold", 0.5)),
                int(node_config["min-count"]),
            )
        except Exception as exc:
            _send(out, {"error": f"{exc}", "refused": type(exc).__name__ == "TooFewCases"})
            return 0
        _send(out, {"report": report})
        return 0
    arrays = None
    if request.get("arrays"):
        arrays = wire.from_bytes(Path(request["arrays"]).read_bytes())
    reply = call_client_app(
        client_app.app,
        kind,
        arrays,
        request["config"],
        node_config,
        group_id=str(request.get("round", "")),
        refusals=(client_app.PolicyRefusal,),
    )
    written = None
    if reply.arrays is not None:
        Path(request["out"]).write_bytes(wire.to_bytes(reply.arrays))
        written = request["out"]
    _send(
        out,
        {
            "metrics": reply.metrics,
            "error": reply.error,
            "refused": reply.refused,
            "arrays": written,
        },
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    torch.set_num_threads(int(os.environ.get("ONCOFED_LEARNING_THREADS", "1")))
    # The protocol keeps the real stdout; anything a library prints (Flower's logger writes
    # to stdout) goes to stderr instead of corrupting it.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if args[:1] == ["coordinate"]:
        return coordinate(sys.stdin, protocol)
    if args[:1] == ["client"]:
        return client(sys.stdin, protocol)
    print("usage: python -m oncofed_learning.worker coordinate|client", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
