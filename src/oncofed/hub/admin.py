"""Hub administration on the hub's own machine: initialise, add nodes and users.

These act on the hub database directly (the operator is on the hub host), so they work
whether or not the hub service is running.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from oncofed.audit import AuditLog
from oncofed.hub.db import make_engine, sessions, upgrade
from oncofed.hub.models import Account, ApiToken, EnrolmentToken, Node, TaskTarget
from oncofed.security.envelope import utcnow
from oncofed.security.keys import SigningKey
from oncofed.security.secrets_ import hash_password, new_password, new_token, token_hash
from oncofed.settings import HubSettings, load_hub_settings, save_settings

ROLES = ("admin", "researcher", "data_holder", "dac")
# Roles held *for one provider*: `dac:<node name>`, `data_holder:<node name>`.
SCOPED_ROLES = ("data_holder", "dac")


class AdminError(RuntimeError):
    pass


@dataclass
class InitResult:
    settings: HubSettings
    admin_username: str
    admin_password: str
    admin_token: str


def init_hub(
    directory: Path, name: str, host: str, port: int, database_url: str = "", public_url: str = ""
) -> InitResult:
    """Create the hub directory, its signing key, database and the first admin account."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "hub.toml").exists():
        raise AdminError(f"{directory} already holds a hub (hub.toml); choose another --dir")
    settings = HubSettings(
        name=name,
        host=host,
        port=port,
        database_url=database_url,
        public_url=public_url,
        directory=directory.resolve(),
    )
    SigningKey.generate().save(settings.resolve(settings.key_file))
    engine = make_engine(settings.db_url)
    upgrade(engine)
    password = new_password()
    with sessions(engine).begin() as s:
        if s.scalar(sa.select(sa.func.count()).select_from(Account)):
            raise AdminError("the database already has accounts: it belongs to another hub")
        s.add(
            Account(
                username="admin",
                password_hash=hash_password(password),
                roles={"roles": ["admin"]},
                created_at=utcnow(),
            )
        )
    token = create_api_token(engine, "admin", name="local admin CLI", days=365)
    token_file = directory / "admin.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    save_settings(settings)
    AuditLog(engine).append("admin", "hub.init", "info", target=name)
    engine.dispose()
    return InitResult(settings, "admin", password, token)


def open_hub(directory: Path) -> tuple[HubSettings, sa.Engine]:
    settings = load_hub_settings(directory)
    engine = make_engine(settings.db_url)
    upgrade(engine)
    return settings, engine


def create_api_token(
    engine: sa.Engine,
    username: str,
    name: str = "",
    days: int = 30,
    scopes: list[str] | None = None,
) -> str:
    token = new_token("oft")
    with sessions(engine).begin() as s:
        account = s.scalar(sa.select(Account).where(Account.username == username))
        if account is None:
            raise AdminError(f"no account {username!r}")
        now = utcnow()
        s.add(
            ApiToken(
                account_id=account.id,
                token_hash=token_hash(token),
                name=name,
                scopes={"scopes": scopes or ["*"]},
                created_at=now,
                expires_at=now + timedelta(days=days),
            )
        )
    return token


def add_user(
    engine: sa.Engine, username: str, roles: list[str], password: str | None = None
) -> str:
    roles = normalise_roles(roles)
    password = password or new_password()
    with sessions(engine).begin() as s:
        if s.scalar(sa.select(Account).where(Account.username == username)):
            raise AdminError(f"an account {username!r} exists already")
        s.add(
            Account(
                username=username,
                password_hash=hash_password(password),
                roles={"roles": roles},
                created_at=utcnow(),
            )
        )
    AuditLog(engine).append(
        "admin", "account.create", "info", target=username, details={"roles": roles}
    )
    return password


def normalise_roles(roles: list[str]) -> list[str]:
    """Check roles; a scoped role `dac:NODE` also grants the plain role `dac`."""
    out: list[str] = []
    for role in roles:
        base, _, node = role.partition(":")
        if base not in ROLES or (node and base not in SCOPED_ROLES) or role.endswith(":"):
            raise AdminError(
                f"unknown role {role!r}; roles are {', '.join(ROLES)}, and "
                "dac:NODE or data_holder:NODE for one provider's node"
            )
        out += [base, role] if node else [role]
    return list(dict.fromkeys(out))


def add_node(engine: sa.Engine, name: str, hours: int) -> str:
    """Invite a node: returns a one-time enrolment token (only its hash is stored)."""
    if not name or len(name) > 200 or not all(c.isalnum() or c in "-_." for c in name):
        raise AdminError("a node name uses letters, digits, '-', '_' or '.' (e.g. de-berlin)")
    token = new_token("ofe")
    now = utcnow()
    with sessions(engine).begin() as s:
        node = s.scalar(sa.select(Node).where(Node.name == name))
        if node is not None and node.status == "enrolled":
            raise AdminError(
                f"node {name!r} is enrolled; revoke it first (`oncofed hub node revoke {name}`)"
                " to enrol a replacement"
            )
        if node is None:
            node = Node(
                id=f"node-{secrets.token_hex(8)}",
                name=name,
                status="invited",
                created_at=now,
                info={},
            )
            s.add(node)
            s.flush()
        s.add(
            EnrolmentToken(
                node_id=node.id,
                token_hash=token_hash(token),
                created_at=now,
                expires_at=now + timedelta(hours=hours),
            )
        )
    AuditLog(engine).append(
        "admin", "node.invite", "info", target=name, details={"token_valid_hours": hours}
    )
    return token


def revoke_node(engine: sa.Engine, name: str) -> None:
    now = utcnow()
    with sessions(engine).begin() as s:
        node = s.scalar(sa.select(Node).where(Node.name == name))
        if node is None:
            raise AdminError(f"no node {name!r}")
        node.status = "revoked"
        node.revoked_at = now
        s.execute(
            sa.update(TaskTarget)
            .where(TaskTarget.node_id == node.id, TaskTarget.status.in_(("pending", "claimed")))
            .values(status="refused", finished_at=now, error="node revoked by the hub admin")
        )
    AuditLog(engine).append("admin", "node.revoke", "info", target=name)


def list_nodes(engine: sa.Engine) -> list[Node]:
    with sessions(engine)() as s:
        return list(s.scalars(sa.select(Node).order_by(Node.name)))


def revoke_tokens(engine: sa.Engine, username: str, token: str | None = None) -> int:
    """Revoke one API token (by its value) or every token of an account; returns how many."""
    now = utcnow()
    with sessions(engine).begin() as s:
        account = s.scalar(sa.select(Account).where(Account.username == username))
        if account is None:
            raise AdminError(f"no account {username!r}")
        query = sa.update(ApiToken).where(
            ApiToken.account_id == account.id, ApiToken.revoked_at.is_(None)
        )
        if token is not None:
            query = query.where(ApiToken.token_hash == token_hash(token))
        count = int(getattr(s.execute(query.values(revoked_at=now)), "rowcount", 0) or 0)
    AuditLog(engine).append(
        username,
        "token.revoke",
        "info",
        target=username,
        details={"tokens": count, "one": token is not None},
    )
    return count
