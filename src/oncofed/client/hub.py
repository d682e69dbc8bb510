"""A small synchronous client for the hub API (used by the CLI, tests and notebooks)."""

from __future__ import annotations

import json
import mimetypes
import os
import time
from pathlib import Path
from typing import Any

import httpx


class HubError(RuntimeError):
    """The hub answered with an error; the message is the hub's own explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


def credentials_path() -> Path:
    base = os.environ.get("ONCOFED_CONFIG_DIR") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config")), "oncofed"
    )
    return Path(base) / "credentials.json"


def _explain(detail: Any) -> str:
    """The hub's error detail as one readable line (validation problems listed)."""
    if isinstance(detail, dict) and "problems" in detail:
        return "; ".join(f"{p.get('path')}: {p.get('message')}" for p in detail["problems"])
    if isinstance(detail, list):  # FastAPI's own request validation errors
        return "; ".join(
            f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg')}"
            if isinstance(d, dict)
            else str(d)
            for d in detail
        )
    return str(detail)


class HubClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    @classmethod
    def from_saved(cls, url: str | None = None) -> HubClient:
        """The client for the hub `oncofed login` saved (or the one named by `url`)."""
        path = credentials_path()
        saved: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        url = url or os.environ.get("ONCOFED_HUB") or saved.get("default")
        if not url:
            raise HubError(0, "no hub chosen: run `oncofed login --hub URL` first")
        token = os.environ.get("ONCOFED_TOKEN") or saved.get("hubs", {}).get(url.rstrip("/"))
        if not token:
            raise HubError(0, f"not logged in to {url}: run `oncofed login --hub {url}`")
        return cls(url, token)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise HubError(0, f"cannot reach the hub at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            detail: Any = response.text
            if isinstance(body, dict) and "detail" in body:
                detail = body["detail"]
            elif isinstance(body, dict) and isinstance(body.get("error"), dict):
                # A Beacon v2 error document: {"meta": ..., "error": {"errorMessage": ...}}
                detail = body["error"].get("errorMessage") or response.text
            raise HubError(response.status_code, _explain(detail))
        return response

    # -- identity ---------------------------------------------------------------------------

    def login(self, username: str, password: str) -> str:
        data = self._call(
            "POST", "/api/auth/token", data={"username": username, "password": password}
        ).json()
        token = str(data["access_token"])
        self.http.headers["authorization"] = f"Bearer {token}"
        return token

    def save_login(self, token: str) -> Path:
        path = credentials_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = json.loads(path.read_text()) if path.exists() else {}
        saved.setdefault("hubs", {})[self.url] = token
        saved["default"] = self.url
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(saved, indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)
        return path

    def logout(self) -> int:
        """Revoke the token this client uses (and forget it)."""
        count = int(self._call("DELETE", "/api/auth/token").json()["revoked"])
        self.http.headers.pop("authorization", None)
        return count

    def me(self) -> dict[str, Any]:
        return dict(self._call("GET", "/api/me").json())

    # -- federation -------------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/nodes").json())

    def submit(
        self,
        kind: str,
        body: dict[str, Any] | None = None,
        nodes: list[str] | None = None,
        ttl_seconds: int | None = None,
    ) -> str:
        payload = {
            "kind": kind,
            "body": body or {},
            "nodes": nodes or None,
            "ttl_seconds": ttl_seconds,
        }
        return str(self._call("POST", "/api/tasks", json=payload).json()["id"])

    def results(
        self, task_id: str, wait_time: float = 0, wait_count: int | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"wait_time": wait_time}
        if wait_count is not None:
            params["wait_count"] = wait_count
        return dict(
            self._call(
                "GET", f"/api/tasks/{task_id}/results", params=params, timeout=wait_time + 30
            ).json()
        )

    def run(
        self,
        kind: str,
        body: dict[str, Any] | None = None,
        nodes: list[str] | None = None,
        ttl_seconds: int | None = None,
        wait_time: float = 30,
    ) -> dict[str, Any]:
        """Submit a task and wait for its results (partial results when time runs out)."""
        task_id = self.submit(kind, body, nodes, ttl_seconds)
        return self.results(task_id, wait_time=wait_time)

    def vocabulary(self) -> dict[str, Any]:
        return dict(self._call("GET", "/api/vocabulary").json())

    def search(
        self, ast: dict[str, Any], nodes: list[str] | None = None, timeout_seconds: float = 10
    ) -> dict[str, Any]:
        """Count matching patients across the federation (answers by the deadline)."""
        payload = {"ast": ast, "nodes": nodes or None, "timeout_seconds": timeout_seconds}
        return dict(
            self._call("POST", "/api/search", json=payload, timeout=timeout_seconds + 30).json()
        )

    def beacon(self, entry: str, timeout_seconds: float = 30, **params: str) -> dict[str, Any]:
        """Ask the hub's Beacon v2 network (every node's Beacon) about ``entry``, e.g.
        ``g_variants`` with ``geneId="KRAS"``; the answer keeps each node's status."""
        return dict(
            self._call(
                "GET", f"/beacon/v2/{entry}", params=params, timeout=timeout_seconds + 30
            ).json()
        )

    def catalogue(self, q: str = "", **facets: str) -> dict[str, Any]:
        """Search the public catalogue (full text and facets)."""
        params = {"q": q, **facets}
        return dict(self._call("GET", "/api/catalogue/datasets", params=params).json())

    def refresh_catalogue(
        self, nodes: list[str] | None = None, timeout_seconds: float = 30
    ) -> dict[str, Any]:
        """Ask the nodes to describe their datasets now (admin)."""
        return dict(
            self._call(
                "POST",
                "/api/catalogue/refresh",
                json={"nodes": nodes, "timeout_seconds": timeout_seconds},
                timeout=timeout_seconds + 30,
            ).json()
        )

    def export_catalogue(self, format_: str = "ttl") -> str:
        """The whole catalogue as EUCAIM DCAT-AP: ``ttl``, ``jsonld`` or ``json`` text."""
        return self._call("GET", "/api/catalogue/export", params={"format": format_}).text

    def harvest_catalogue(self, url: str, timeout_seconds: float = 300) -> dict[str, Any]:
        """Import another FAIR Data Point's catalogue into this hub's (admin)."""
        return dict(
            self._call(
                "POST", "/api/catalogue/harvest", json={"url": url}, timeout=timeout_seconds
            ).json()
        )

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/tasks/{task_id}").json())

    # -- access negotiation -----------------------------------------------------------------

    def create_access_request(
        self,
        title: str,
        resources: list[dict[str, str]],
        form: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create an access request (researchers); it starts as a DRAFT that only its author
        sees. Each resource is ``{"id": dataset id, "provider": node name}`` (``"name"``
        optional). Returns the request's view, whose ``missing`` lists the form fields
        still needed before it can be submitted."""
        payload = {"title": title, "resources": resources, "form": form or {}}
        return dict(self._call("POST", "/api/negotiations", json=payload).json())

    def access_requests(self) -> list[dict[str, Any]]:
        """The access requests the caller may see: their own, every one for a hub admin, and
        for DAC members and data holders the submitted ones naming their nodes' datasets.
        Summary rows (providers, not resources): `access_request` has the rest."""
        return list(self._call("GET", "/api/negotiations").json())

    def access_request(self, request_id: str) -> dict[str, Any]:
        """One request: form, resources with their states and rows, and its history."""
        return dict(self._call("GET", f"/api/negotiations/{request_id}").json())

    def edit_access_form(self, request_id: str, form: dict[str, Any]) -> dict[str, Any]:
        """Replace the whole access form (the author, while it is a DRAFT or returned for
        resubmission); send every field, not only the changed ones."""
        return dict(self._call("PUT", f"/api/negotiations/{request_id}/form", json=form).json())

    def request_event(self, request_id: str, event: str, note: str = "") -> dict[str, Any]:
        """Fire a request-level lifecycle event (SUBMIT, APPROVE, START ...); the hub checks
        the caller's role and the current state. Returns the request's new view."""
        return dict(
            self._call(
                "POST",
                f"/api/negotiations/{request_id}/events",
                json={"event": event, "note": note},
            ).json()
        )

    def resource_event(
        self,
        request_id: str,
        row: int,
        event: str,
        note: str = "",
        conditions: str = "",
        grant_days: int | None = None,
    ) -> dict[str, Any]:
        """Fire an event on one requested resource: a DAC member's decision, or the author's
        answer to it. ``row`` is the resource's ``row`` in the request's view, not its
        dataset id (several requests may name one dataset). ``conditions`` go with
        INDICATE_ACCESS_CONDITIONS; ``grant_days`` sets the visa's lifetime on a grant."""
        body: dict[str, Any] = {"event": event, "note": note, "conditions": conditions}
        if grant_days is not None:
            body["grant_days"] = grant_days
        return dict(
            self._call(
                "POST", f"/api/negotiations/{request_id}/resources/{row}/events", json=body
            ).json()
        )

    def comments(self, request_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/api/negotiations/{request_id}/comments").json())

    def add_comment(
        self, request_id: str, body: str, provider: str | None = None
    ) -> dict[str, Any]:
        """Comment on a request; ``provider`` (a node name) addresses only that provider's
        DAC instead of every provider's."""
        return dict(
            self._call(
                "POST",
                f"/api/negotiations/{request_id}/comments",
                json={"body": body, "provider": provider},
            ).json()
        )

    def visas(self) -> list[dict[str, Any]]:
        """The caller's valid (unrevoked, unexpired) visas, each with its signed token."""
        return list(self._call("GET", "/api/visas").json()["visas"])

    def attachments(self, request_id: str) -> list[dict[str, Any]]:
        """A request's attached documents: id, filename, size, sha256, content type."""
        return list(self._call("GET", f"/api/negotiations/{request_id}/attachments").json())

    def attach(self, request_id: str, path: Path) -> dict[str, Any]:
        """Attach a document (its author; at most 10 MB), e.g. the ethics approval."""
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        files = {"file": (path.name, path.read_bytes(), content_type)}
        return dict(
            self._call("POST", f"/api/negotiations/{request_id}/attachments", files=files).json()
        )

    def download_attachment(self, request_id: str, attachment_id: int) -> bytes:
        return self._call(
            "GET", f"/api/negotiations/{request_id}/attachments/{attachment_id}"
        ).content

    def revoke_visa(self, jti: str, reason: str) -> dict[str, Any]:
        """Revoke a visa (a hub admin, or a DAC member of its provider); nodes refuse it
        within a minute. The request's view lists its visas with their ids."""
        return dict(self._call("POST", f"/api/visas/{jti}/revoke", json={"reason": reason}).json())

    # -- federated learning (issue 20) -------------------------------------------------------

    def learning_train(self, **spec: Any) -> dict[str, Any]:
        """Start a federated training run (`POST /api/learning/runs`); returns its view."""
        return dict(self._call("POST", "/api/learning/runs", json=spec).json())

    def learning_runs(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/learning/runs").json()["runs"])

    def learning_run(self, run_id: str) -> dict[str, Any]:
        """A run: status, per-round metrics per site, result, model hash and provenance."""
        return dict(self._call("GET", f"/api/learning/runs/{run_id}").json())

    def learning_wait(
        self, run_id: str, timeout: float = 3600, on_update: Any = None, every: float = 1.0
    ) -> dict[str, Any]:
        """Poll a run until it finishes (or `timeout`); `on_update(view)` after each poll."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.learning_run(run_id)
            if on_update is not None:
                on_update(view)
            if view["status"] not in ("queued", "running") or time.monotonic() > deadline:
                return view
            time.sleep(every)

    def learning_download(self, run_id: str, dest: Path) -> Path:
        """Save the run's model file (only its owner may)."""
        dest.write_bytes(self._call("GET", f"/api/learning/runs/{run_id}/model").content)
        return dest

    def learning_upload_model(self, path: Path) -> str:
        """Upload a model file for validation; returns its SHA-256 at the hub."""
        return str(
            self._call("POST", "/api/learning/models", content=path.read_bytes()).json()["sha256"]
        )

    def learning_validate(self, **spec: Any) -> dict[str, Any]:
        """Start external validation of a model at the nodes; returns the run's view."""
        return dict(self._call("POST", "/api/learning/validations", json=spec).json())
