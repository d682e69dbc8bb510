"""Configuration: a TOML file per part, overridable by environment variables.

A hub keeps `hub.toml` in its directory, a node `node.toml` in its own. Environment variables
(`ONCOFED_HUB_*`, `ONCOFED_NODE_*`) override the file so that a container or a test can change
one value without rewriting it. Paths in the file are relative to the directory they live in,
so a whole hub or node directory can be moved.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, Field, ValidationError

HUB_FILE = "hub.toml"
NODE_FILE = "node.toml"


class ConfigError(RuntimeError):
    """A configuration file is missing or wrong; the message says which and what to do."""


class HubSettings(BaseModel):
    name: str = "oncofed hub"
    host: str = "127.0.0.1"
    port: int = 8700
    public_url: str = ""
    # SQLite file in the hub directory unless a PostgreSQL URL is given.
    database_url: str = ""
    key_file: str = "keys/hub_ed25519.pem"
    task_ttl_seconds: int = Field(60, ge=1, le=7 * 24 * 3600)
    lease_seconds: int = Field(30, ge=1, le=3600)
    max_attempts: int = Field(3, ge=1, le=20)
    enrolment_token_hours: int = Field(24, ge=1, le=24 * 30)
    long_poll_seconds: float = Field(20.0, gt=0, le=120)
    clock_skew_seconds: int = Field(300, ge=5, le=3600)
    # The hub's own limits per researcher, in front of each node's budget.
    search_rate_per_minute: int = Field(30, ge=1)
    search_daily_limit: int = Field(1000, ge=1)
    # Tasks and their results are deleted this long after they expired (the daily search
    # limit counts a day of tasks, hence at least one).
    task_retention_days: float = Field(30.0, ge=1, le=3650)
    # How long a Beacon network query waits for the nodes before answering with what came.
    beacon_wait_seconds: float = Field(10.0, gt=0, le=120)
    # How often the hub asks every node to describe its datasets (catalogue figures).
    catalogue_refresh_seconds: float = Field(900.0, ge=10, le=7 * 24 * 3600)
    # Access negotiation and grants (issue 6).
    visa_lifetime_days: int = Field(365, ge=1, le=3650)
    negotiation_reminder_seconds: int = Field(3 * 24 * 3600, ge=1)
    # E-mail notifications; with no smtp_host they go to mail-outbox.log in the hub directory.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_from: str = ""
    smtp_user: str = ""
    smtp_password_file: str = ""  # a file holding the password (never the password itself)
    # Log-in through an external OIDC provider (Keycloak, Life Science Login); off when empty.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret_file: str = ""
    oidc_scopes: str = "openid profile email"
    oidc_roles_claim: str = "eduperson_entitlement"
    oidc_entitlement_prefix: str = "urn:oncofed:role:"

    directory: Path = Field(Path("."), exclude=True)

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.directory / path

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolve('hub.db')}"

    @property
    def url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


class NodeSettings(BaseModel):
    name: str
    provider_id: str = ""
    host: str = "127.0.0.1"
    port: int = 8710
    hub_url: str = ""
    node_id: str = ""
    hub_key_id: str = ""
    hub_public_key: str = ""
    key_file: str = "keys/node_ed25519.pem"
    secret_file: str = "keys/pseudonym.secret"
    store_file: str = "store.duckdb"
    state_file: str = "state.db"
    policy_file: str = "policy.toml"
    images_dir: str = "images"
    quarantine_dir: str = "quarantine"
    # API key a EUCAIM Focus agent presents (`Authorization: ApiKey <key>`); empty: refused.
    mediator_api_key: str = ""
    # One key per upstream network (name -> key), each budgeted on its own (policy.toml
    # [mediator]); mediator_api_key is the network "eucaim".
    mediator_api_keys: dict[str, str] = Field(default_factory=dict)
    # Strict EUCAIM mode: integer counts (withheld as 0) and an age_range object always.
    mediator_strict: bool = False
    # Image de-identification (STANDARDS §6): dates to year-month, or a per-patient shift.
    deid_date_mode: Literal["month", "shift"] = "month"
    deid_uid_root: str = "2.25."
    poll_seconds: float = Field(20.0, gt=0, le=120)
    request_timeout_seconds: float = Field(30.0, gt=0, le=600)
    # Visa revocation list: refreshed from the hub this often; record-level access is refused
    # when the last good refresh is older than grant_max_stale_seconds (fail closed).
    grant_refresh_seconds: float = Field(15.0, gt=0, le=30)
    grant_max_stale_seconds: float = Field(60.0, gt=0, le=600)
    # DuckDB worker threads for the store; 0: DuckDB's default (one per core).
    store_threads: int = Field(0, ge=0, le=256)

    directory: Path = Field(Path("."), exclude=True)

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.directory / path

    @property
    def enrolled(self) -> bool:
        return bool(self.node_id and self.hub_url and self.hub_public_key)


def _env_overrides(prefix: str, model: type[BaseModel]) -> dict[str, str]:
    out: dict[str, str] = {}
    for field in model.model_fields:
        value = os.environ.get(f"{prefix}{field.upper()}")
        if value is not None:
            out[field] = value
    return out


def _load(directory: Path, filename: str, model: type[BaseModel], prefix: str) -> Any:
    path = directory / filename
    if not path.is_file():
        part = "hub" if model is HubSettings else "node"
        raise ConfigError(
            f"no {filename} in {directory}: run `oncofed {part} init --dir {directory}` first"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    data.update(_env_overrides(prefix, model))
    try:
        return model.model_validate({**data, "directory": directory.resolve()})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def load_hub_settings(directory: Path) -> HubSettings:
    settings: HubSettings = _load(directory, HUB_FILE, HubSettings, "ONCOFED_HUB_")
    return settings


def load_node_settings(directory: Path) -> NodeSettings:
    settings: NodeSettings = _load(directory, NODE_FILE, NodeSettings, "ONCOFED_NODE_")
    return settings


def save_settings(settings: HubSettings | NodeSettings) -> Path:
    """Write the settings file atomically (a crash never leaves half a file)."""
    filename = HUB_FILE if isinstance(settings, HubSettings) else NODE_FILE
    path = settings.directory / filename
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(settings.model_dump(mode="json")), encoding="utf-8")
    os.replace(tmp, path)
    return path
