"""The demo's training run: a researcher is granted every node's dataset, then trains the
lesion model for two rounds across the nodes and sees the per-round AUC at each site.

The demo's nodes allow the catalogue's small CNN and, because demo providers hold tens of
patients where a hospital holds thousands, accept 10 training patients (the default
minimum is 50; a real node keeps it) and hold back half of their patients for validation
(the default is a fifth) so that each reports its AUC from at least `min_count` patients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from oncofed.learning.tasks import ROUND_KIND, VALIDATE_KIND
from oncofed.learning.worker import WorkerMissing, learning_python
from oncofed.node.policy import load_policy, write_policy
from oncofed.settings import load_node_settings

MODEL = "small-cnn-2d@1"
DEMO_MIN_TRAIN_CASES = 10
DEMO_VALIDATION_FRACTION = 0.5
# Below this many patients per provider the training split is under the demo minimum.
MIN_PATIENTS = 30

FORM = {
    "purpose": "Train and validate a lesion detection model on CT across the providers.",
    "duo_codes": ["DUO:0000006"],
    "hypothesis": "A federated model detects lesions as well as a pooled one.",
    "objectives": "Per-site AUC after two rounds.",
    "methods": "Federated averaging (Flower); images never leave the providers.",
    "team": "Demo researcher",
    "funding": "none (demo)",
    "ethics_approval": "not needed: synthetic data",
}


def allow_learning(node_dir: Path) -> None:
    """Let a (stopped) demo node take training and validation tasks for the demo model."""
    settings = load_node_settings(node_dir)
    path = settings.resolve(settings.policy_file)
    policy = load_policy(path)
    for kind in (ROUND_KIND, VALIDATE_KIND):
        if kind not in policy.allowed_tasks:
            policy.allowed_tasks.append(kind)
    policy.learning.allowed_models = [MODEL]
    policy.learning.min_train_cases = DEMO_MIN_TRAIN_CASES
    policy.learning.validation_fraction = DEMO_VALIDATION_FRACTION
    write_policy(path, policy)


def available(patients: int) -> str | None:
    """Why the demo cannot train (None when it can)."""
    if patients < MIN_PATIENTS:
        return f"needs at least {MIN_PATIENTS} patients per provider"
    try:
        learning_python()
    except WorkerMissing as exc:
        return str(exc)
    return None


def grant_and_train(
    url: str,
    users: dict[str, tuple[str, str]],
    admin_password: str,
    nodes: list[str],
    console: Console,
) -> dict[str, Any]:
    """Researcher requests every node's dataset, admin and DAC grant, researcher trains."""
    from oncofed.client.hub import HubClient

    def client(user: str, password: str) -> HubClient:
        c = HubClient(url, timeout=120)
        c.login(user, password)
        return c

    researcher = client("researcher", users["researcher"][0])
    admin = client("admin", admin_password)
    dac = client("dac", users["dac"][0])
    resources = [{"id": f"{n}-oncology", "provider": n} for n in nodes]
    request = researcher.create_access_request("lesion model (demo)", resources, FORM)
    researcher.request_event(request["id"], "SUBMIT")
    admin.request_event(request["id"], "APPROVE")
    view = researcher.request_event(request["id"], "START")
    for resource in view["resources"]:
        for event in ("MARK_AS_AVAILABLE", "GRANT_ACCESS_TO_RESOURCE"):
            dac.resource_event(request["id"], resource["row"], event)
    console.print(
        f"[green]access granted[/]: the researcher holds a visa for {len(nodes)} datasets"
    )
    run = researcher.learning_train(
        model=MODEL,
        task="lesion present",
        datasets=[f"{n}:{n}-oncology" for n in nodes],
        rounds=2,
        batch_size=16,
        local_epochs=5,
        round_timeout=120,
    )
    with console.status(f"training {MODEL} across {len(nodes)} nodes (2 rounds) ..."):
        run = researcher.learning_wait(run["id"], timeout=600)
    table = Table(title=f"federated training, run {run['id'][:8]} ({run['status']})")
    for column in ("round", *nodes):
        table.add_column(column)
    for entry in run["rounds"]:
        cells = []
        for n in nodes:
            m = entry["nodes"].get(n, {})
            auc = (m.get("evaluate") or {}).get("eval-auc")
            cells.append(
                f"AUC {auc:.3f}"
                if isinstance(auc, float) and auc >= 0
                else m.get("train_status", "-")
            )
        table.add_row(str(entry["round"]), *cells)
    console.print(table)
    if run.get("error"):
        console.print(f"[red]{run['status']}[/]: {run['error']}")
    return run
