"""Shared fixtures: temporary federations of real processes, and a PostgreSQL database.

PostgreSQL tests run wherever a server answers; in CI (CI=true) they must run, so a server
that is down is started, and a server that cannot be reached fails the run instead of
skipping it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from oncofed.local import LocalFederation

PG_ADMIN_URL = os.environ.get("ONCOFED_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_connect():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


def _start_postgres() -> None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    for version in versions:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    try:
        _pg_connect().close()
        return True
    except Exception as first:
        if IN_CI:
            _start_postgres()
            try:
                _pg_connect().close()
                return True
            except Exception as exc:
                pytest.fail(f"CI=true but PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc}")
        pytest.skip(f"no PostgreSQL server reachable at {PG_ADMIN_URL} ({first})")
    return False


@pytest.fixture
def pg_database(postgres_available: bool) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    name = f"oncofed_test_{secrets.token_hex(4)}"
    with _pg_connect() as con:
        con.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    with _pg_connect() as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def hub_database(request: pytest.FixtureRequest) -> str:
    """Run a hub test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return ""
    url: str = request.getfixturevalue("pg_database")
    return url


FederationFactory = Callable[..., LocalFederation]


def load_synthetic(node_dir: Path, provider_index: int, patients: int) -> None:
    """Fill a (stopped) node's store with synthetic patients of provider `provider_index`."""
    from oncofed.synth.load import fill_node

    fill_node(node_dir, provider_index, patients)


@pytest.fixture
def make_federation(tmp_path: Path) -> Iterator[FederationFactory]:
    started: list[LocalFederation] = []

    def make(
        nodes: int = 3, database_url: str = "", patients: int = 0, **hub_overrides: object
    ) -> LocalFederation:
        fed = LocalFederation(tmp_path / f"fed{len(started)}", database_url=database_url)
        fed.init_hub("test hub")
        if hub_overrides:
            from oncofed.settings import load_hub_settings, save_settings

            settings = load_hub_settings(fed.hub.directory)
            for key, value in hub_overrides.items():
                setattr(settings, key, value)
            save_settings(settings)
        started.append(fed)
        fed.start_hub()
        for i in range(nodes):
            fed.add_node(f"node-{i + 1}", f"p{i + 1}", start=not patients)
            if patients:
                load_synthetic(fed.nodes[f"node-{i + 1}"].directory, i, patients)
                fed.start_node(f"node-{i + 1}")
        return fed

    yield make
    for fed in started:
        fed.stop()
