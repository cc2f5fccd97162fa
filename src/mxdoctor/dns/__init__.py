"""The DNS query engine and the views mxdoctor resolves through (system, resolvers, authoritative)."""
