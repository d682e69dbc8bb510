"""The node: installed at a provider, sovereign over its data, outbound connections only."""
