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
    assert f"request {nid} created: SUBMITTED" in out
    assert "node-1/p1-cohort, node-2/p2-cohort" in out

    # Submitted, it is visible to node-1's DAC; not to another researcher.
    assert nid in fed.ok("dac1", "request", "list")
    assert nid not in fed.ok("bob", "request", "list")

    out = fed.ok("admin", "request", "event", nid, "approve", "--note", "scientifically sound")
    assert f"request {nid}: SUBMITTED -> APPROVED" in out
    out = fed.ok("admin", "request", "event", nid, "START")
    assert f"request {nid}: APPROVED -> IN_PROGRESS" in out
    assert "REPRESENTATIVE_CONTACTED" in out and "REPRESENTATIVE_UNREACHABLE" in out

    # node-1's DAC sees its resource with its row, and decides on it.
    listed = fed.json("dac1", "request", "list")
    view = next(v for v in listed if v["id"] == nid)
    rows = {r["provider"]: r for r in view["resources"]}
    assert rows["node-1"]["state"] == "REPRESENTATIVE_CONTACTED"
    assert rows["node-2"]["state"] == "REPRESENTATIVE_UNREACHABLE"  # no DAC for node-2
    row = str(rows["node-1"]["row"])
    table = fed.ok("dac1", "request", "list")
    assert re.search(rf"{row} node-1/p1-cohort REPRESENTATIVE_CONTACTED", table), table

    def decide(user: str, event: str, *extra: str) -> str:
        return fed.ok(user, "request", "decide", nid, row, event, *extra)

    assert "REPRESENTATIVE_CONTACTED -> RESOURCE_AVAILABLE" in decide("dac1", "MARK_AS_AVAILABLE")
    conditions = "Acknowledge node-1 in publications."
    out = decide("dac1", "INDICATE_ACCESS_CONDITIONS", "--conditions", conditions)
    assert "RESOURCE_AVAILABLE -> ACCESS_CONDITIONS_INDICATED" in out
    out = decide("alice", "ACCEPT_ACCESS_CONDITIONS")
    assert "ACCESS_CONDITIONS_INDICATED -> ACCESS_CONDITIONS_MET" in out
    out = decide(
        "dac1", "GRANT_ACCESS_TO_RESOURCE", "--reason", "DAC meeting 2024-05", "--grant-days", "30"
    )
    assert f"request {nid}, node-1/p1-cohort (row {row}): " in out
    assert "ACCESS_CONDITIONS_MET -> RESOURCE_MADE_AVAILABLE" in out
    assert "a visa for it was issued to alice" in out

    out = fed.ok("dac1", "request", "comment", nid, "Access is live; see the conditions.")
    assert re.search(rf"comment \d+ added to request {nid} \(to everyone on it\)", out), out
    fed.ok("alice", "request", "comment", nid, "Thank you [node-1]!", "--provider", "node-1")

    # The researcher sees the states, the history and the comments.
    shown = fed.ok("alice", "request", "show", nid)
    assert "IN_PROGRESS" in shown and "KRAS cohort study" in shown
    assert re.search(r"node-1\s+│\s+p1-cohort\s+│\s+RESOURCE_MADE_AVAILABLE", shown), shown
    assert re.search(r"node-2\s+│\s+p2-cohort\s+│\s+REPRESENTATIVE_UNREACHABLE", shown), shown
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
    assert re.search(rf"{nid} .*RESOURCE_MADE_AVAILABLE", fed.ok("alice", "request", "list"))

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
    assert f"request {draft} created: DRAFT" in out
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
    assert f"request {draft} form saved (DRAFT)" in out and "submit it" in out
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
    line = fed.refused(
        "dac1", "request", "decide", draft, str(rows["node-1"]), "GRANT_ACCESS_TO_RESOURCE"
    )
    assert "cannot GRANT_ACCESS_TO_RESOURCE a resource that is REPRESENTATIVE_CONTACTED" in line

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
