"""Node set-up on the provider's machine: initialise the directory, enrol with a hub."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from oncofed import __version__
from oncofed.audit import AuditLog
from oncofed.node.policy import NodePolicy, write_policy
from oncofed.node.state import state_engine
from oncofed.node.store import NodeStore
from oncofed.security.keys import PublicKey, SigningKey
from oncofed.security.pseudonym import new_secret
from oncofed.settings import NodeSettings, load_node_settings, save_settings


class NodeAdminError(RuntimeError):
    pass


def init_node(
    directory: Path, name: str, provider_id: str = "", host: str = "127.0.0.1", port: int = 8710
) -> NodeSettings:
    if (directory / "node.toml").exists():
        raise NodeAdminError(f"{directory} already holds a node (node.toml); choose another --dir")
    provider_id = provider_id or name
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,40}", provider_id):
        raise NodeAdminError(
            f"provider id {provider_id!r} must be 2-41 lower-case letters, digits or '-' "
            "(it prefixes every pseudonym); pass --provider-id"
        )
    directory.mkdir(parents=True, exist_ok=True)
    settings = NodeSettings(
        name=name, provider_id=provider_id, host=host, port=port, directory=directory.resolve()
    )
    SigningKey.generate().save(settings.resolve(settings.key_file))
    new_secret(settings.resolve(settings.secret_file))
    write_policy(settings.resolve(settings.policy_file), NodePolicy())
    store = NodeStore(settings.resolve(settings.store_file))
    store.migrate()
    store.close()
    engine = state_engine(settings.resolve(settings.state_file))
    AuditLog(engine).append("admin", "node.init", "info", name)
    engine.dispose()
    save_settings(settings)
    return settings


def enrol(directory: Path, hub_url: str, token: str) -> NodeSettings:
    settings = load_node_settings(directory)
    key = SigningKey.load(settings.resolve(settings.key_file))
    hub_url = hub_url.rstrip("/")
    try:
        response = httpx.post(
            f"{hub_url}/api/nodes/enrol",
            timeout=30,
            json={"token": token.strip(), "public_key": key.public.b64, "version": __version__},
        )
    except httpx.TransportError as exc:
        raise NodeAdminError(f"cannot reach the hub at {hub_url}: {exc}") from exc
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise NodeAdminError(f"the hub refused the enrolment: {detail}")
    data = response.json()
    hub_key = PublicKey.from_b64(data["hub_public_key"])
    if hub_key.kid != data["hub_key_id"]:
        raise NodeAdminError("the hub's key id does not match its key; refusing to pin it")
    settings.hub_url = hub_url
    settings.node_id = data["node_id"]
    settings.hub_key_id = hub_key.kid
    settings.hub_public_key = hub_key.b64
    save_settings(settings)
    engine = state_engine(settings.resolve(settings.state_file))
    AuditLog(engine).append(
        "admin",
        "node.enrol",
        "info",
        hub_url,
        details={"node_id": settings.node_id, "hub_key_id": hub_key.kid},
    )
    engine.dispose()
    return settings
