"""The hub: catalogue, search broker, task channel, identity and audit. No patient data."""
