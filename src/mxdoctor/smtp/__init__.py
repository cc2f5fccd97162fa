"""SMTP reachability: the staged probe of each MX address (``probe``) and the ``mxdoctor smtp`` command."""
