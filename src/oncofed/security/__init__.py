"""Keys, signatures, tokens and passwords shared by hub, node and client."""
