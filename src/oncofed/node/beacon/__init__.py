"""GA4GH Beacon v2 at the node: query engine, HTTP router, and the ``beacon.query`` task."""

from oncofed.beacon.wire import BeaconConfig, BeaconError, BeaconRequest
from oncofed.node.beacon.engine import BeaconEngine
from oncofed.node.beacon.router import (
    GrantChecker,
    create_beacon_router,
    deny_all,
    engine_for,
    node_engine,
)

__all__ = [
    "BeaconConfig",
    "BeaconEngine",
    "BeaconError",
    "BeaconRequest",
    "GrantChecker",
    "create_beacon_router",
    "deny_all",
    "engine_for",
    "node_engine",
]
