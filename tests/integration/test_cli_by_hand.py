"""README's "Running a federation by hand", command for command: an operator creates and
serves a hub, invites a node, the provider creates, enrols and serves it, the admin logs in
and runs a task, both audit logs verify, a reused token and a revoked node are refused with
one clear line. Every step is the `oncofed` command in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oncofed.local import free_port, wait_http

pytestmark = pytest.mark.integration


class Operator:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("ONCOFED_HUB", "ONCOFED_TOKEN")
        }
        self.env.update(
            ONCOFED_CONFIG_DIR=str(base / "config"), COLUMNS="200", NO_COLOR="1", TERM="dumb"
        )
        self.services: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str, input_: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "oncofed", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
            cwd=self.base,
            input=input_,
        )

    def ok(self, *args: str, input_: str | None = None) -> str:
        r = self.run(*args, input_=input_)
        assert r.returncode == 0, f"oncofed {' '.join(args)}: {r.stdout}{r.stderr}"
        return r.stdout

    def refused(self, *args: str) -> str:
        r = self.run(*args)
        assert r.returncode == 1, f"oncofed {' '.join(args)}: {r.returncode} {r.stdout}{r.stderr}"
        assert "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        return lines[0]

    def serve(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        with (self.base / log).open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "oncofed", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.base,
                start_new_session=True,
            )
        self.services.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.services):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[Operator]:
    op = Operator(tmp_path)
    try:
        yield op
    finally:
        op.stop()


def test_a_federation_set_up_and_used_by_hand(operator: Operator) -> None:
    op = operator
    hub_port, node_port = free_port(), free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"

    # on the hub host
    created = op.ok(
        "hub", "init", "--dir", "hub", "--name", "My federation", "--port", str(hub_port)
    )
    password = re.search(r"password: (\S+)", created)
    assert password, created
    assert "already holds a hub" in op.refused("hub", "init", "--dir", "hub")
    hub = op.serve("hub", "serve", "--dir", "hub", log="hub.log")
    wait_http(f"{hub_url}/api/health", 60, hub, op.base / "hub.log")
    invited = op.ok("hub", "node", "add", "de-berlin", "--dir", "hub")
    token = re.search(r"(ofe_\S+)", invited)
    assert token, invited

    # at the provider
    op.ok("node", "init", "--dir", "node", "--name", "de-berlin", "--port", str(node_port))
    info = json.loads(op.ok("node", "info", "--dir", "node"))
    # Aggregate tasks only until the provider's policy says more; no analysis algorithm.
    assert info["policy"]["allowed_algorithms"] == [] and info["datasets"] == []
    assert info["policy"]["min_count"] >= 10
    enrolled = op.ok("node", "enrol", "--dir", "node", "--hub", hub_url, "--token", token[1])
    assert "enrolled" in enrolled
    op.ok("node", "init", "--dir", "node2", "--name", "de-berlin-2")
    reused = op.refused("node", "enrol", "--dir", "node2", "--hub", hub_url, "--token", token[1])
    assert "token" in reused.lower(), reused
    node = op.serve("node", "serve", "--dir", "node", log="node.log")
    deadline = time.monotonic() + 60
    while not wait_http(f"http://127.0.0.1:{node_port}/health", 60, node, op.base / "node.log").get(
        "hub_connected"
    ):
        assert time.monotonic() < deadline, (op.base / "node.log").read_text()[-2000:]
        time.sleep(0.2)

    # a researcher (here the admin)
    assert "logged in" in op.ok(
        "login", "--hub", hub_url, "--username", "admin", input_=f"{password[1]}\n"
    )
    listed = op.ok("nodes")
    assert re.search(r"de-berlin\W.*enrolled", listed), listed
    view = json.loads(op.ok("task", "run", "node.info", "--json"))
    assert view["complete"] and [t["status"] for t in view["targets"]] == ["succeeded"]
    assert view["targets"][0]["result"]["name"] == "de-berlin"
    shown = op.ok("task", "show", view["id"])
    assert re.search(r"de-berlin\W+succeeded", shown), shown
    assert "audit log intact" in op.ok("audit", "verify", "--hub-dir", "hub")
    assert "audit log intact" in op.ok("audit", "verify", "--node-dir", "node")
    exported = op.ok("audit", "export", "audit.jsonl", "--hub-dir", "hub")
    entries = [json.loads(line) for line in (op.base / "audit.jsonl").read_text().splitlines()]
    assert f"{len(entries)} entries written" in exported
    assert any(e["action"] == "task.create" for e in entries)

    # the node leaves the federation: revoked, it gets no more tasks
    op.ok("hub", "node", "revoke", "de-berlin", "--dir", "hub")
    assert "no node is enrolled" in op.refused("task", "run", "node.info")
    assert "logged out" in op.ok("logout")
    assert "not logged in" in op.refused("nodes")
