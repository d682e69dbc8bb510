"""What a running node holds: settings, keys, store, state, policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from oncofed.audit import AuditLog
from oncofed.node.policy import NodePolicy, load_policy
from oncofed.node.state import state_engine
from oncofed.node.store import NodeStore
from oncofed.privacy.ledger import PrivacyLedger
from oncofed.security.keys import PublicKey, SigningKey
from oncofed.settings import NodeSettings


@dataclass
class NodeContext:
    settings: NodeSettings
    key: SigningKey
    store: NodeStore
    state: sa.Engine
    audit: AuditLog
    policy: NodePolicy
    privacy_ledger: PrivacyLedger
    # (store generation, disclosed dataset sizes): see oncofed.node.tasks.node_summary.
    dataset_sizes: tuple[int, list[dict[str, Any]]] | None = None

    @property
    def hub_key(self) -> PublicKey:
        return PublicKey.from_b64(self.settings.hub_public_key)

    @classmethod
    def open(cls, settings: NodeSettings) -> NodeContext:
        state = state_engine(settings.resolve(settings.state_file))
        return cls(
            settings=settings,
            key=SigningKey.load(settings.resolve(settings.key_file)),
            store=NodeStore(settings.resolve(settings.store_file), threads=settings.store_threads),
            state=state,
            audit=AuditLog(state),
            policy=load_policy(settings.resolve(settings.policy_file)),
            privacy_ledger=PrivacyLedger(state),
        )

    def close(self) -> None:
        self.store.close()
        self.state.dispose()
