"""The researcher's SDK: a small synchronous client for the hub API, the same one the CLI
uses (so a notebook and `oncofed` see the same answers, refusals and grants).

    from oncofed.client import HubClient
    hub = HubClient.from_saved()                 # the hub and token `oncofed login` saved
    result = hub.search(where=["diagnosis=lung cancer", "modality=CT"])
    result.to_frame()                            # one row per provider and dataset

Every method returns the hub's JSON (a ``dict``; searches, Beacon answers and the
vocabulary also have ``.to_frame()``) and raises :class:`HubError` with the hub's own
explanation when it refuses.
"""

from __future__ import annotations

import json
import mimetypes
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from oncofed.client.results import BeaconResult, SearchResult, Vocabulary

if TYPE_CHECKING:
    from oncofed.client.analyse import Analyse

# How long fetched visas are presented before asking the hub again, and how many fit in the
# header the hub forwards to nodes (a node reads at most 50; the hub's field holds 20,000).
PASSPORT_HEADER = "GA4GH-Passport"  # as oncofed.security.visas reads it (not imported: the
# SDK stays free of the server's crypto stack, which costs start-up time)
PASSPORT_SECONDS = 60.0
PASSPORT_MAX_VISAS = 50
PASSPORT_MAX_CHARS = 19_000


# The hub answers a search or a Beacon query by its deadline (with what has arrived): the
# client waits that long and this much more for the answer to travel, then gives up.
ANSWER_GRACE_SECONDS = 3.0


def answer_within(seconds: float) -> httpx.Timeout:
    """The wait for a call the hub answers within `seconds`: connecting and each read are
    bounded too, so a hub that accepts the connection and then hangs fails in time."""
    total = seconds + ANSWER_GRACE_SECONDS
    return httpx.Timeout(total, connect=min(total, 5.0))


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
    """A session with one hub, as one user (an API token from `oncofed login`, the portal's
    account page, or :meth:`login`). Not thread-safe: one per thread."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._vocabulary: Vocabulary | None = None
        self._passport: tuple[float, str] | None = None

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

    @property
    def analyse(self) -> Analyse:
        """Tier 3: federated statistics (``client.analyse.glm(...)``, ``.km(...)`` ...)."""
        from oncofed.client.analyse import Analyse

        return Analyse(self)

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, *, with_visas: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One request to the hub; its error as a HubError with the hub's own words.

        ``with_visas`` presents the caller's granted visas (``GA4GH-Passport``): every call
        whose answer a grant can widen (Beacon records, Tier 3 analyses) sets it, so that a
        researcher never has to fetch and pass visas by hand."""
        if with_visas:
            passport = self.passport(kwargs.get("timeout"))
            if passport:
                kwargs["headers"] = {**kwargs.get("headers", {}), PASSPORT_HEADER: passport}
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            what = "connect to" if isinstance(exc, httpx.ConnectTimeout) else "get an answer from"
            limit = kwargs.get("timeout") or self.http.timeout
            seconds = limit.read if isinstance(limit, httpx.Timeout) else limit
            within = f" within {seconds:.0f} s" if seconds else ""
            raise HubError(
                0, f"could not {what} the hub at {self.url}{within}; is it running?"
            ) from exc
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
        """Log in with a local account; this client uses the new token from now on, and
        returns it (``save_login`` keeps it for the CLI)."""
        data = self._call(
            "POST", "/api/auth/token", data={"username": username, "password": password}
        ).json()
        token = str(data["access_token"])
        self.http.headers["authorization"] = f"Bearer {token}"
        return token

    def save_login(self, token: str) -> Path:
        """Keep `token` as this hub's login for `oncofed` and :meth:`from_saved` (file
        readable by its owner only)."""
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

    def passport(self, timeout: httpx.Timeout | float | None = None) -> str:
        """The caller's valid visas as a ``GA4GH-Passport`` header value ('' without any).

        Fetched from the hub at most once a minute (a revoked visa drops out at the next
        fetch, and nodes refuse it from their revocation list anyway). A caller the hub
        gives no visas (a node, an expired login) simply presents none."""
        now = time.monotonic()
        if self._passport is not None and now - self._passport[0] < PASSPORT_SECONDS:
            return self._passport[1]
        try:
            limit = timeout if timeout is not None else self.http.timeout
            visas = list(self._call("GET", "/api/visas", timeout=limit).json()["visas"])
        except HubError as exc:
            if exc.status in (401, 403, 404):
                visas = []
            else:
                raise
        tokens: list[str] = []
        size = 0
        for visa in reversed(visas):  # the newest first, as many as a header carries
            token = str(visa.get("visa", ""))
            if not token or len(tokens) >= PASSPORT_MAX_VISAS:
                continue
            if size + len(token) + 1 > PASSPORT_MAX_CHARS:
                break
            tokens.append(token)
            size += len(token) + 1
        self._passport = (now, " ".join(tokens))
        return self._passport[1]

    def me(self) -> dict[str, Any]:
        """Who this client is: username and roles."""
        return dict(self._call("GET", "/api/me").json())

    # -- federation -------------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        """The enrolled nodes (providers), online or not, with when each was last seen."""
        return list(self._call("GET", "/api/nodes").json())

    def submit(
        self,
        kind: str,
        body: dict[str, Any] | None = None,
        nodes: list[str] | None = None,
        ttl_seconds: int | None = None,
    ) -> str:
        """Send a task of `kind` to `nodes` (all if None) and return its id at once."""
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
        """A task's per-node results, waiting up to `wait_time` s for them (or for
        `wait_count` of them); ``complete`` says whether every node has a final status."""
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

    def vocabulary(self) -> Vocabulary:
        """Every search key with its label, value type and allowed values (fetched once);
        ``.to_frame()`` lists codes next to their labels."""
        if self._vocabulary is None:
            self._vocabulary = Vocabulary(self._call("GET", "/api/vocabulary").json())
        return self._vocabulary

    def search(
        self,
        ast: dict[str, Any] | None = None,
        nodes: list[str] | None = None,
        timeout_seconds: float = 10,
        *,
        where: str | list[str] | None = None,
    ) -> SearchResult:
        """Count matching patients across the federation; answers by the deadline with each
        provider's disclosure-controlled counts and status.

        Say what to count either as ``where`` criteria, read like the CLI's ``--where``
        (``"diagnosis=lung cancer"``, ``["modality=CT", "age=50..70"]``: keys and values by
        label or code, AND-ed), or as a EUCAIM ``ast``: a tree (``{"operand": "AND",
        "children": [...]}``) or one condition (``{"key", "type", "value"}``). Raises
        :class:`WhereError` for a criterion the vocabulary does not know."""
        from oncofed.client.where import as_tree, criteria

        if (ast is None) == (where is None):
            raise TypeError("search() takes either ast or where")
        limit = answer_within(timeout_seconds)
        if where is not None and self._vocabulary is None:
            self._vocabulary = Vocabulary(
                self._call("GET", "/api/vocabulary", timeout=limit).json()
            )
        tree = criteria(self.vocabulary(), where) if where is not None else as_tree(ast or {})
        payload = {"ast": tree, "nodes": nodes or None, "timeout_seconds": timeout_seconds}
        return SearchResult(self._call("POST", "/api/search", json=payload, timeout=limit).json())

    def beacon(self, entry: str, timeout_seconds: float = 30, **params: str) -> BeaconResult:
        """Ask the hub's Beacon v2 network (every node's Beacon) about ``entry``, e.g.
        ``g_variants`` with ``geneId="KRAS"``; the answer keeps each node's status.

        The caller's granted visas go with the query, so ``requestedGranularity="record"``
        returns records from every dataset a grant covers (each node verifies the visa
        itself); elsewhere the answer stays a count or yes/no."""
        return BeaconResult(
            self._call(
                "GET",
                f"/beacon/v2/{entry}",
                with_visas=True,
                params=params,
                timeout=answer_within(timeout_seconds),
            ).json()
        )

    def catalogue(self, q: str = "", **facets: str) -> dict[str, Any]:
        """Search the public catalogue (full text and facets)."""
        params = {"q": q, **facets}
        return dict(self._call("GET", "/api/catalogue/datasets", params=params).json())

    def edit_dataset(self, key: str, **fields: Any) -> dict[str, Any]:
        """Change a dataset's descriptive fields in the catalogue (a data holder of its
        node, or an admin): title, description, keywords, country ... ``None`` returns a
        field to its default. `key` is the catalogue's, e.g. ``"node-1:p1-cohort"``."""
        return dict(self._call("PATCH", f"/api/catalogue/datasets/{key}", json=fields).json())

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
        """A task's kind, targets and each node's status (no results)."""
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
        """The comments on a request that the caller may read."""
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
        """An attached document's bytes (the author, the request's DACs, admins)."""
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
