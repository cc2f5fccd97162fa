"""Fixtures of the SMTP probe tests; the servers themselves live in smtp_servers.py."""

from __future__ import annotations

import pytest
from smtp_servers import Certs, make_certs


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))
