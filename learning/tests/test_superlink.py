"""oncofed's Flower apps under Flower's own runtime: a real `flower-superlink`, two
`flower-supernode`s and `flwr run`, on loopback, insecure, telemetry and runtime dependency
installation off. The ServerApp is `train_federated` (the FedAvg that `OncofedGrid` drives)
and the SuperNodes run the node's ClientApp; after two rounds the weights must equal those
of the same run over `OncofedGrid` in this process. Every process started here (and the
SuperExec and app processes they start) is stopped, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.cli.build import build_fab_from_disk

import oncofed_learning
from oncofed_learning import wire
from oncofed_learning.flower_adapter import OncofedGrid, Transport
from oncofed_learning.flower_app import APP_DIR, HISTORY_FILE, WEIGHTS_FILE
from oncofed_learning.server_app import RunSpec, train_federated

BIN = Path(sys.executable).parent
MARK = "ONCOFED_TEST_PROCESSES"
RUN_DEADLINE = 180.0  # seconds; the run takes ~30-50 s on 2 busy cores

pytestmark = [
    pytest.mark.skipif(
        not (BIN / "flower-superlink").exists(), reason="flwr's console scripts are not installed"
    ),
    # Processes Flower detaches are found by their environment, read from /proc.
    pytest.mark.skipif(sys.platform != "linux", reason="needs /proc"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _marked_pids(mark: str) -> list[int]:
    """Live processes whose environment carries `mark`: what this test started, including
    processes Flower detached into their own session (SuperLink's SuperExec)."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


class Processes:
    """The processes of one federation, each in its own session, logged to files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.mark = uuid.uuid4().hex
        self.started: dict[str, subprocess.Popen[bytes]] = {}
        package_root = str(Path(oncofed_learning.__file__).resolve().parents[1])
        self.env = os.environ | {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            # The apps run the oncofed_learning this test imported, not another install.
            "PYTHONPATH": os.pathsep.join(
                p for p in (package_root, os.environ.get("PYTHONPATH")) if p
            ),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2",
            # Two SuperNodes share two cores: one thread each trains faster than two.
            "OMP_NUM_THREADS": "1",
            MARK: self.mark,
        }

    def home(self, name: str) -> Path:
        """Each process its own FLWR_HOME, as on separate machines (FABs install there)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                [str(BIN / args[0]), *args[1:]],
                env=self.env | {"FLWR_HOME": str(self.home(name))},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started[name] = process
        return process

    def cli(self, *args: str, timeout: float = 60) -> str:
        """A `flwr` command with its own Flower configuration naming this SuperLink."""
        result = subprocess.run(
            [str(BIN / "flwr"), *args],
            env=self.env | {"FLWR_HOME": str(self.home("cli"))},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"flwr {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} (exit {p.poll()}):\n"
            + (self.root / f"{name}.log").read_text(errors="replace")[-3000:]
            for name, p in self.started.items()
        )

    def check_alive(self) -> None:
        dead = [name for name, p in self.started.items() if p.poll() is not None]
        assert not dead, f"{', '.join(dead)} stopped\n{self.logs()}"

    def stop(self) -> list[int]:
        """Stop every process: each started one's session, then anything still carrying
        this test's mark. Returns the marked processes left (none, or it failed)."""
        for process in self.started.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.started.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            leftover = _marked_pids(self.mark)
            for pid in leftover:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while leftover and time.monotonic() < deadline:
                time.sleep(0.1)
                leftover = _marked_pids(self.mark)
        return _marked_pids(self.mark)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path / "flower")
    try:
        yield procs
    finally:
        procs.stop()


def _wait_for_port(port: int, procs: Processes, deadline: float) -> None:
    while time.monotonic() < deadline:
        procs.check_alive()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"the SuperLink did not listen on {port}\n{procs.logs()}")


def _run_status(procs: Processes, run_id: str) -> str:
    listing = json.loads(procs.cli("ls", "--run-id", run_id, "--format", "json"))
    return str(listing["runs"][0]["status"])


def test_the_app_bundle_carries_no_code() -> None:
    """What `flwr run` sends to the SuperLink (and it to every SuperNode) is a manifest
    naming the node operator's installed components; no Python file travels."""
    with zipfile.ZipFile(BytesIO(build_fab_from_disk(APP_DIR))) as fab:
        assert sorted(fab.namelist()) == [".info/CONTENT", "pyproject.toml"]


def test_two_rounds_under_a_superlink_equal_the_oncofed_grid(
    sites: list[Path],
    processes: Processes,
    tmp_path: Path,
    in_process: Callable[..., Transport],
) -> None:
    sites = sites[:2]
    deadline = time.monotonic() + RUN_DEADLINE
    link = _free_port()
    processes.start(
        "superlink",
        "flower-superlink",
        "--insecure",
        "--host",
        "127.0.0.1",
        "--port",
        str(link),
        "--disable-runtime-dependency-installation",
    )
    for i, cases in enumerate(sites):
        node_config = f"cases={json.dumps(str(cases))} min-train-cases=20 min-count=5"
        processes.start(
            f"supernode{i}",
            "flower-supernode",
            "--insecure",
            "--superlink",
            f"127.0.0.1:{link}",
            "--host",
            "127.0.0.1",
            "--port",
            str(_free_port()),
            "--node-config",
            node_config,
            # Without a bound a SuperNode retries an absent SuperLink forever (flwr#6250).
            "--max-wait-time",
            "60",
        )
    _wait_for_port(link, processes, deadline)
    (processes.home("cli") / "config.toml").write_text(
        f'[superlink]\ndefault = "test"\n\n[superlink.test]\n'
        f'address = "127.0.0.1:{link}"\ninsecure = true\n'
    )
    out = tmp_path / "result"
    started = json.loads(
        processes.cli(
            "run",
            str(APP_DIR),
            "--format",
            "json",
            "--run-config",
            f"result-dir={json.dumps(str(out))} num-server-rounds=2 min-sites=2 "
            "batch-size=16 seed=1",
        )
    )
    assert started["success"], started
    run_id = str(started["run-id"])

    status = ""
    checked = time.monotonic()
    while time.monotonic() < deadline:
        processes.check_alive()
        if (out / WEIGHTS_FILE).exists() or time.monotonic() - checked > 10:
            status = _run_status(processes, run_id)
            checked = time.monotonic()
            if status.startswith("finished"):
                break
        time.sleep(0.5)
    if status != "finished:completed":
        # The ServerApp's traceback is in the run's log at the SuperLink, not in a process log.
        run_log = processes.cli("log", run_id, "--show")[-4000:]
        pytest.fail(f"run {run_id}: {status or 'not finished'}\n{run_log}\n{processes.logs()}")
    assert processes.stop() == [], "processes of the federation outlived it"

    arrays = wire.from_bytes((out / WEIGHTS_FILE).read_bytes())
    history = json.loads((out / HISTORY_FILE).read_text())
    assert sorted(history["train"]) == ["1", "2"] and sorted(history["evaluate"]) == ["1", "2"]
    assert set(history["evaluate"]["2"]) == {"eval-loss", "eval-auc"}
    assert all(np.isfinite(a).all() for a in arrays.to_numpy_ndarrays())

    # The same run over oncofed's Grid, every node in this process.
    spec = RunSpec(rounds=2, min_sites=2, batch_size=16, seed=1)
    grid = OncofedGrid([1, 2], in_process(sites, [], {}), spec.min_sites, run_id=9)
    expected, expected_history = train_federated(grid, spec, 2)
    assert list(arrays.keys()) == list(expected.keys())
    for name, got, want in zip(
        arrays.keys(), arrays.to_numpy_ndarrays(), expected.to_numpy_ndarrays(), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
    for kind in ("train", "evaluate"):
        for r, metrics in getattr(expected_history, kind).items():
            got_metrics: dict[str, Any] = history[kind][str(r)]
            assert got_metrics == pytest.approx(metrics, rel=1e-5), (kind, r)
