"""A whole federation on one machine: a hub and nodes as separate processes on loopback.

Used by `oncofed demo`, the integration tests and the benchmarks, so that all three
exercise the same real processes, ports and enrolment flow a deployment uses.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from oncofed.client.hub import HubClient
from oncofed.hub.admin import add_node, init_hub, open_hub
from oncofed.node.admin import enrol, init_node


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"process for {url} exited with {proc.returncode}:\n{tail}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return dict(response.json())
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@dataclass
class Process:
    name: str
    directory: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "oncofed", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # Ctrl-C in a terminal reaches only the parent
            )

    def stop(self, kill: bool = False, timeout: float = 10) -> None:
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class LocalFederation:
    base: Path
    database_url: str = ""
    hub_workers: int = 1  # several hub processes (PostgreSQL only)
    hub: Process = field(init=False)
    nodes: dict[str, Process] = field(default_factory=dict)
    admin_token: str = ""
    admin_password: str = ""

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.hub = Process("hub", self.base / "hub", free_port(), self.base / "logs" / "hub.log")

    @classmethod
    def reopen(cls, base: Path) -> LocalFederation:
        """The federation an earlier run left in `base` (hub and enrolled nodes, not running),
        on the ports it was set up with: the nodes are enrolled with the hub's address."""
        from oncofed.settings import load_hub_settings, load_node_settings

        fed = cls(base)
        fed.hub.port = load_hub_settings(fed.hub.directory).port
        fed.admin_token = (fed.hub.directory / "admin.token").read_text().strip()
        for directory in sorted(p for p in (base / "nodes").iterdir() if p.is_dir()):
            settings = load_node_settings(directory)
            fed.nodes[settings.name] = Process(
                settings.name, directory, settings.port, base / "logs" / f"node-{settings.name}.log"
            )
        return fed

    # -- hub --------------------------------------------------------------------------------

    def init_hub(self, name: str = "oncofed demo hub") -> None:
        result = init_hub(
            self.hub.directory, name, "127.0.0.1", self.hub.port, database_url=self.database_url
        )
        self.admin_token, self.admin_password = result.admin_token, result.admin_password

    def start_hub(self, timeout: float = 60) -> None:
        workers = ["--workers", str(self.hub_workers)] if self.hub_workers > 1 else []
        port = str(self.hub.port)
        self.hub.start(["hub", "serve", "--dir", str(self.hub.directory), "--port", port, *workers])
        wait_http(f"{self.hub.url}/api/health", timeout, self.hub.proc, self.hub.log)

    def restart_hub(self, kill: bool = False) -> None:
        self.hub.stop(kill=kill)
        self.start_hub()

    def admin(self) -> HubClient:
        return HubClient(self.hub.url, self.admin_token)

    # -- nodes ------------------------------------------------------------------------------

    def add_node(self, name: str, provider_id: str = "", start: bool = True) -> Process:
        node = Process(
            name, self.base / "nodes" / name, free_port(), self.base / "logs" / f"node-{name}.log"
        )
        init_node(node.directory, name, provider_id or name, port=node.port)
        _, engine = open_hub(self.hub.directory)
        try:
            token = add_node(engine, name, hours=1)
        finally:
            engine.dispose()
        enrol(node.directory, self.hub.url, token)
        self.nodes[name] = node
        if start:
            self.start_node(name)
        return node

    def start_node(self, name: str, timeout: float = 60, wait_connected: bool = True) -> None:
        node = self.nodes[name]
        node.start(["node", "serve", "--dir", str(node.directory), "--port", str(node.port)])
        deadline = time.monotonic() + timeout
        while True:
            health = wait_http(f"{node.url}/health", timeout, node.proc, node.log)
            if health.get("hub_connected") or not wait_connected:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {name} did not connect to the hub in {timeout:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        self.hub.stop()
