"""Identity: the hub's embedded OIDC issuer and log-in through an external OIDC provider."""
