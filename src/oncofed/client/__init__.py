"""The researcher's Python SDK: `HubClient`."""

from oncofed.client.hub import HubClient, HubError

__all__ = ["HubClient", "HubError"]
