"""Node policy, disclosure of counts, and configuration errors."""

from __future__ import annotations

import pytest

from oncofed.node.policy import NodePolicy, load_policy
from oncofed.protocol import TaskBodyError, validate_body
from oncofed.settings import ConfigError, load_hub_settings, load_node_settings


def test_policy_refuses_by_default(tmp_path) -> None:  # type: ignore[no-untyped-def]
    policy = load_policy(tmp_path / "absent.toml")
    assert policy.allows_task("node.info")
    assert not policy.allows_task("analysis.train")
    assert policy.allowed_algorithms == []
    bad = tmp_path / "policy.toml"
    bad.write_text("allowed_tasks = 3\n")
    with pytest.raises(ConfigError, match="allowed_tasks"):
        load_policy(bad)
    bad.write_text("allowed_tasks = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_policy(bad)
    assert NodePolicy().summary()["min_count"] == 10


def test_settings_errors_name_the_file_and_the_fix(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="oncofed hub init"):
        load_hub_settings(tmp_path)
    (tmp_path / "node.toml").write_text('name = "n"\nport = "eighty"\n')
    with pytest.raises(ConfigError, match="port"):
        load_node_settings(tmp_path)
    (tmp_path / "node.toml").write_text('name = "n"\n')
    monkeypatch.setenv("ONCOFED_NODE_PORT", "9999")
    assert load_node_settings(tmp_path).port == 9999


def test_task_bodies_are_validated() -> None:
    assert validate_body("node.info", {}) == {}
    with pytest.raises(TaskBodyError, match="unknown task kind"):
        validate_body("nope", {})
    with pytest.raises(TaskBodyError, match="JSON object"):
        validate_body("node.info", [])
