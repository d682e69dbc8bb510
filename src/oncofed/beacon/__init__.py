"""GA4GH Beacon v2 on the wire: request and response shapes shared by node and hub."""
