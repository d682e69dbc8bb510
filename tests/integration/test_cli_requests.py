"""The `oncofed request` and `oncofed beacon` commands against a real hub and two nodes.

Every step runs the command line in a subprocess, as a user would, each user logged in
with `oncofed login` into their own config directory ($ONCOFED_CONFIG_DIR): a researcher
requests datasets of both nodes, the hub admin approves and starts the request, node-1's
DAC grants its dataset, the researcher sees the states and the visa; refusals of the hub
come out as one line and exit code 1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from oncofed.hub.admin import add_user, open_hub
from oncofed.local import LocalFederation
from oncofed.synth.load import fill_node
from tests.integration.test_negotiation import FORM

pytestmark = pytest.mark.integration

# node-1 has a DAC member, node-2 none (its DAC is unreachable when the request starts).
USERS = {"alice": ["researcher"], "bob": ["researcher"], "dac1": ["dac:node-1"]}
DATASETS = ["node-1:p1-cohort", "node-2:p2-cohort"]


@dataclass
class Fed:
    url: str
    base: Path
    config: dict[str, Path] = field(default_factory=dict)

    def cli(self, user: str, *args: str, columns: int = 250) -> subprocess.CompletedProcess[str]:
        """`oncofed ARGS` as `user` (the login saved in that user's config directory)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("ONCOFED_HUB", "ONCOFED_TOKEN", "ONCOFED_CONFIG_DIR")
        }
        config = self.config.get(user, self.base / "config" / user)
        env.update(ONCOFED_CONFIG_DIR=str(config), COLUMNS=str(columns), NO_COLOR="1")
        return subprocess.run(
            [sys.executable, "-m", "oncofed", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    def ok(self, user: str, *args: str) -> str:
        r = self.cli(user, *args)
        assert r.returncode == 0, f"oncofed {' '.join(args)} as {user}: {r.stdout}{r.stderr}"
        return r.stdout

    def json(self, user: str, *args: str) -> Any:
        return json.loads(self.ok(user, *args, "--json"))

    def refused(self, user: str, *args: str) -> str:
        """The one-line error of a command the hub (or the CLI) refuses."""
        r = self.cli(user, *args, columns=80)  # a narrow terminal must not wrap it
        assert r.returncode == 1, f"expected a refusal, got {r.returncode}: {r.stdout}{r.stderr}"
        assert "Traceback" not in r.stderr and r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("error: ")
        return lines[0]


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    base = tmp_path_factory.mktemp("cli-requests")
    federation = LocalFederation(base / "fed")
    federation.init_hub("cli test hub")
    federation.start_hub()
    try:
        for i in (1, 2):
            name = f"node-{i}"
            federation.add_node(name, f"p{i}", start=False)
            fill_node(federation.nodes[name].directory, i - 1, 12)  # dataset p{i}-cohort
            federation.start_node(name)
        _, engine = open_hub(federation.hub.directory)
        try:
            passwords = {user: add_user(engine, user, roles) for user, roles in USERS.items()}
        finally:
            engine.dispose()
        passwords["admin"] = federation.admin_password
        out = Fed(federation.hub.url, base)
        for user, password in passwords.items():
            out.config[user] = base / "config" / user
            said = out.ok(
                user, "login", "--hub", out.url, "--username", user, "--password", password
            )
            assert "logged in" in said
            assert (out.config[user] / "credentials.json").exists()
        yield out
    finally:
        federation.stop()


def _form_options() -> list[str]:
    options = [
        "--purpose", FORM["purpose"], "--hypothesis", FORM["hypothesis"],
        "--objectives", FORM["objectives"], "--methods", FORM["methods"],
        "--team", FORM["team"], "--funding", FORM["funding"],
        "--ethics-approval", FORM["ethics_approval"],
    ]  # fmt: skip
    for code in FORM["duo_codes"]:
        options += ["--duo", code]
    return options


def _datasets() -> list[str]:
    return [arg for d in DATASETS for arg in ("--dataset", d)]


def _create(fed: Fed, *extra: str) -> tuple[str, str]:
    out = fed.ok("alice", "request", "create", "--title", "KRAS cohort study", *_datasets(), *extra)
    m = re.search(r"request (neg-[0-9a-f]+) created: (\w+)", out)
    assert m, out
    return m.group(1), out


def test_request_to_grant_through_the_cli(fed: Fed) -> None:
    nid, out = _create(fed, *_form_options(), "--submit")
    assert f"request {nid} created: submitted" in out
    assert "node-1/p1-cohort, node-2/p2-cohort" in out

    # Submitted, it is visible to node-1's DAC; not to another researcher.
    assert nid in fed.ok("dac1", "request", "list")
    assert nid not in fed.ok("bob", "request", "list")

    out = fed.ok("admin", "request", "event", nid, "approve", "--note", "scientifically sound")
    assert f"request {nid}: you approved the request (submitted -> approved)" in out
    out = fed.ok("admin", "request", "event", nid, "START")
    assert f"request {nid}: you started the request (approved -> in progress)" in out
    assert "awaiting the provider's decision" in out and "provider not reachable" in out

    # node-1's DAC sees its resource with its row, and decides on it.
    listed = fed.json("dac1", "request", "list")
    view = next(v for v in listed if v["id"] == nid)
    rows = {r["provider"]: r for r in view["resources"]}
    assert rows["node-1"]["state"] == "REPRESENTATIVE_CONTACTED"
    assert rows["node-2"]["state"] == "REPRESENTATIVE_UNREACHABLE"  # no DAC for node-2
    row = str(rows["node-1"]["row"])
    table = fed.ok("dac1", "request", "list")
    assert "node-1/p1-cohort: awaiting the provider's decision" in table, table

    def decide(user: str, event: str, *extra: str, which: str = "node-1") -> str:
        return fed.ok(user, "request", "decide", nid, which, event, *extra)

    # The dataset by its provider, its PROVIDER:DATASET or its row; decisions in plain words.
    out = decide("dac1", "available", which="node-1:p1-cohort")
    assert "(awaiting the provider's decision -> available, decision pending)" in out
    conditions = "Acknowledge node-1 in publications."
    out = decide("dac1", "conditions", "--conditions", conditions, which=row)
    assert "you set access conditions" in out and "-> conditions set: awaiting the" in out
    out = decide("alice", "ACCEPT_ACCESS_CONDITIONS")
    assert "-> conditions accepted: awaiting the grant)" in out
    out = decide("dac1", "grant", "--reason", "DAC meeting 2024-05", "--grant-days", "30")
    assert f"request {nid}, node-1/p1-cohort: you granted access" in out
    assert "(conditions accepted: awaiting the grant -> granted)" in out
    assert "a visa for it was issued to alice" in out

    out = fed.ok("dac1", "request", "comment", nid, "Access is live; see the conditions.")
    assert re.search(rf"comment \d+ added to request {nid} \(to everyone on it\)", out), out
    fed.ok("alice", "request", "comment", nid, "Thank you [node-1]!", "--provider", "node-1")

    # The researcher sees the states, the history and the comments.
    shown = fed.ok("alice", "request", "show", nid)
    assert "in progress" in shown and "KRAS cohort study" in shown
    assert re.search(r"node-1\s+│\s+p1-cohort\s+│\s+granted", shown), shown
    assert re.search(r"node-2\s+│\s+p2-cohort\s+│\s+provider not reachable", shown), shown
    assert "IN_PROGRESS" not in shown and "RESOURCE_MADE_AVAILABLE" not in shown.split("history")[0]
    for text in (
        "GRANT_ACCESS_TO_RESOURCE",
        "DAC meeting 2024-05",
        "scientifically sound",
        conditions,
        "Access is live; see the conditions.",
        "Thank you [node-1]!",  # the user's text, not read as markup
        "node-1 DAC",
        "DUO:0000006, DUO:0000019",
    ):
        assert text in shown, text
    view = fed.json("alice", "request", "show", nid)
    assert [h["event"] for h in view["history"] if h["resource_row"] is None] == [
        "SUBMIT",
        "APPROVE",
        "START",
    ]
    assert [c["author"] for c in view["comments"]] == ["dac1", "alice"]
    assert re.search(rf"{nid} .*node-1/p1-cohort: granted", fed.ok("alice", "request", "list"))

    # ... and the visa the grant issued, on the DAC's conditions, for 30 days.
    table = fed.ok("alice", "request", "visas")
    assert re.search(rf"node-1\s+│\s+p1-cohort\s+│\s+{nid}", table), table
    assert conditions in table and "DUO:0000006" in table
    visas = fed.json("alice", "request", "visas")["visas"]
    assert [(v["provider"], v["dataset"], v["negotiation"]) for v in visas] == [
        ("node-1", "p1-cohort", nid)
    ]
    expires = datetime.fromisoformat(visas[0]["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    assert "no valid visas" in fed.ok("bob", "request", "visas")

    # Documents: the researcher attaches the ethics approval, the DAC lists and saves it.
    ethics = fed.base / "ethics-approval.pdf"
    ethics.write_bytes(b"%PDF-1.4 ethics committee approval 2024/117\n" * 50)
    added = fed.ok("alice", "request", "attach", nid, str(ethics))
    assert "ethics-approval.pdf" in added and f"{ethics.stat().st_size} bytes" in added
    (listed,) = fed.json("dac1", "request", "attachments", nid)
    saved = fed.base / "dac1-copy.pdf"
    fed.ok("dac1", "request", "download", nid, str(listed["id"]), "-o", str(saved))
    assert saved.read_bytes() == ethics.read_bytes()
    again = fed.refused("dac1", "request", "download", nid, str(listed["id"]), "-o", str(saved))
    assert "exists" in again and "--force" in again
    assert "no attachment 999" in fed.refused("dac1", "request", "download", nid, "999")
    assert "no such file" in fed.refused("alice", "request", "attach", nid, "missing.pdf")
    refused = fed.refused("dac1", "request", "attach", nid, str(ethics))
    assert "only the requesting researcher" in refused, refused

    # The DAC finds the visa in the request and revokes it; the researcher holds none then.
    (issued,) = fed.json("dac1", "request", "show", nid)["visas"]
    assert (issued["jti"], issued["subject"], issued["revoked_at"]) == (
        visas[0]["jti"],
        "alice",
        None,
    )
    assert issued["jti"] in fed.ok("dac1", "request", "show", nid)
    refusal = fed.refused("bob", "request", "revoke-visa", issued["jti"], "--reason", "mine")
    assert f"no visa {issued['jti']} that you may revoke" in refusal
    fed.ok("dac1", "request", "revoke-visa", issued["jti"], "--reason", "consent withdrawn")
    assert fed.json("alice", "request", "visas")["visas"] == []
    (revoked,) = fed.json("alice", "request", "show", nid)["visas"]
    assert revoked["revoked_at"] and revoked["revoked_reason"] == "consent withdrawn"


def test_refusals_are_one_clear_line(fed: Fed) -> None:
    draft, out = _create(fed, "--purpose", "a study", "--duo", "DUO:0000042")
    assert f"request {draft} created: draft" in out
    assert "missing before it can be submitted: hypothesis" in out
    # A draft is private to its author (the hub answers 404, not 403).
    assert f"no access request {draft}" in fed.refused("dac1", "request", "show", draft)

    # Illegal transition: the hub says what is possible instead.
    line = fed.refused("alice", "request", "event", draft, "START")
    assert line == (
        f"error: START on {draft}: cannot START a negotiation that is DRAFT; "
        "possible from DRAFT: SUBMIT, ABANDON"
    )
    assert "fill in before submitting: hypothesis" in fed.refused(
        "alice", "request", "event", draft, "SUBMIT"
    )
    # Completing the form through the CLI makes it submittable.
    out = fed.ok("alice", "request", "edit", draft, *_form_options())
    assert f"request {draft} form saved (draft)" in out and "submit it" in out
    fed.ok("alice", "request", "event", draft, "SUBMIT")

    # Wrong role: a researcher cannot approve, a DAC cannot decide for another node.
    line = fed.refused("alice", "request", "event", draft, "APPROVE")
    assert line == f"error: APPROVE on {draft}: only admin may APPROVE this request"
    fed.ok("admin", "request", "event", draft, "APPROVE")
    fed.ok("alice", "request", "event", draft, "START")
    rows = {
        r["provider"]: r["row"] for r in fed.json("alice", "request", "show", draft)["resources"]
    }
    line = fed.refused("dac1", "request", "decide", draft, str(rows["node-2"]), "MARK_AS_AVAILABLE")
    assert "only a DAC member of node-2 may MARK_AS_AVAILABLE this resource" in line
    # A grant is one step; a second one finds nothing left to grant.
    fed.ok("dac1", "request", "decide", draft, "node-1", "grant")
    line = fed.refused("dac1", "request", "decide", draft, "node-1", "grant")
    assert "cannot GRANT_ACCESS_TO_RESOURCE a resource that is RESOURCE_MADE_AVAILABLE" in line
    line = fed.refused("dac1", "request", "decide", draft, "node-9", "grant")
    assert "'node-9' is not one of its datasets" in line and "node-1:p1-cohort (row" in line

    # Unknown ids and names.
    assert "unknown negotiation event 'FINISH'; one of SUBMIT" in fed.refused(
        "alice", "request", "event", draft, "finish"
    )
    line = fed.refused("alice", "request", "show", "neg-0000000000000000")
    assert line == "error: no access request neg-0000000000000000"
    assert "provider 'node-9' is not an enrolled node" in fed.refused(
        "alice", "request", "create", "--title", "t", "--dataset", "node-9:x"
    )
    assert "write NODE:DATASET_ID" in fed.refused(
        "alice", "request", "create", "--title", "t", "--dataset", "p1-cohort"
    )
    # --submit with an incomplete form: the draft exists, and the line says so.
    line = fed.refused(
        "alice", "request", "create", "--title", "t", "--dataset", DATASETS[0], "--submit"
    )
    assert re.match(
        r"error: request neg-[0-9a-f]+ was created as a DRAFT but not submitted: "
        r"fill in before submitting: purpose",
        line,
    ), line
    # Not logged in at all.
    assert "run `oncofed login --hub URL` first" in fed.refused("nobody", "request", "list")


def test_beacon_network_through_the_cli(fed: Fed) -> None:
    doc = fed.json("alice", "beacon", "g_variants", "--gene", "KRAS")
    nodes = {n["node"]: n for n in doc["info"]["nodes"]}
    assert set(nodes) == {"node-1", "node-2"}
    assert all(n["status"] == "succeeded" for n in nodes.values())
    sent = doc["meta"]["receivedRequestSummary"]
    assert sent["requestedGranularity"] == "count"
    assert sent["requestParameters"]["genomicVariant"] == {"geneId": "KRAS"}

    table = fed.ok("alice", "beacon", "g_variants", "--gene", "KRAS")
    exists = "yes" if doc["responseSummary"]["exists"] else "no"
    title = " ".join(table.split())  # Rich wraps a title to the table's width
    assert f"Beacon v2 network, g_variants geneId=KRAS: exists {exists}" in title
    for name, node in nodes.items():
        count = node.get("numTotalResults", "")
        assert re.search(rf"{name}\s+│\s+succeeded\s+│\s+{exists}\s+│\s+{count}", table), table

    # --variant is VCF-style (1-based); Beacon v2 positions are 0-based.
    doc = fed.json("alice", "beacon", "g_variants", "--variant", "12:25245350:C:T")
    params = doc["meta"]["receivedRequestSummary"]["requestParameters"]["genomicVariant"]
    assert params["referenceName"] == "12" and str(params["start"]) in ("25245349", "[25245349]")
    assert (params["referenceBases"], params["alternateBases"]) == ("C", "T")

    doc = fed.json("alice", "beacon", "datasets", "--param", "requestedGranularity=record")
    ids = {c["id"] for c in doc["response"]["collections"]}
    assert ids == {"node-1:p1-cohort", "node-2:p2-cohort"}

    # The nodes' Beacon errors come back as the Beacon error message, in one line.
    line = fed.refused("alice", "beacon", "g_variants", "--param", "start=5")
    assert "a position query needs referenceName" in line
    assert "unknown Beacon entry type 'variants'" in fed.refused("alice", "beacon", "variants")


def _readme_lifecycle() -> list[list[str]]:
    """The commands of the README's "An access request, start to finish", as argv lists."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("### An access request, start to finish", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        line = line.split("  #", 1)[0].strip()
        if line.startswith("oncofed "):
            commands.append(shlex.split(line)[1:])
    return commands


def test_the_readme_request_example_works_as_printed(fed: Fed, tmp_path: Path) -> None:
    """Each line run as its role would (the README's comments say whose line it is), with
    the README's provider and dataset standing for this federation's, and `neg-...` for
    the id the first command printed."""
    names = {"de-berlin:de-berlin-oncology": DATASETS[0], "de-berlin": "node-1"}
    commands = _readme_lifecycle()
    assert [c[:2] for c in commands] == [
        ["request", "create"],
        ["request", "attach"],
        ["request", "event"],
        ["request", "event"],
        ["request", "decide"],
        ["request", "show"],
        ["request", "visas"],
    ]
    (tmp_path / "ethics-approval.pdf").write_bytes(b"%PDF-1.4 approval\n")
    nid = ""
    for argv in commands:
        args = [nid if a == "neg-..." else names.get(a, a) for a in argv]
        user = {"event": "admin", "decide": "dac1"}.get(args[1], "alice")
        if args[1] == "attach":
            args[-1] = str(tmp_path / args[-1])
        out = fed.ok(user, *args)
        if args[1] == "create":
            nid = re.search(r"request (neg-[0-9a-f]+) created: submitted", out).group(1)  # type: ignore[union-attr]
    shown = fed.ok("alice", "request", "show", nid)
    assert re.search(r"node-1\s+│\s+p1-cohort\s+│\s+granted", shown), shown
    assert "DAC of 2 May" in shown
    assert re.search(rf"node-1\s+│\s+p1-cohort\s+│\s+{nid}", fed.ok("alice", "request", "visas"))


def test_the_readme_sdk_example_runs(fed: Fed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python block, as a researcher logged in with `oncofed login` runs it."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    for name in ("ONCOFED_HUB", "ONCOFED_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONCOFED_CONFIG_DIR", str(fed.config["alice"]))
    scope: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), scope)
    frame = scope["frame"]
    assert list(frame["provider"]) == ["node-1", "node-2"]
    # 12 patients a node: lung cancer with CT is below the minimum, withheld (never 0).
    assert frame["patients"].isna().all() and (frame["patients_below"] == 10).all()
    assert set(scope["women"].to_frame()["status"]) == {"succeeded"}
    codes = scope["codes"]
    lung = codes[(codes["label"] == "Diagnosis") & (codes["value_label"] == "lung cancer")]
    assert list(lung["value"]) == ["SNOMEDCT363358000"]
    assert set(scope["kras"].to_frame()["node"]) == {"node-1", "node-2"}
