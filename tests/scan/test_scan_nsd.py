"""mxdoctor scan against a real NSD (Debian ``nsd``) on loopback: a small zone with every route case,
with minimal responses and with NSD's full ones (authority and additional sections)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from _scanlab import records, scan_cli

pytestmark = pytest.mark.skipif(shutil.which("nsd") is None, reason="needs Debian's nsd (make debs)")

ZONE = """$ORIGIN nsd.test.
$TTL 300
@ IN SOA ns hostmaster 1 3600 600 86400 300
@ IN NS ns
ns IN A 127.0.0.1
one IN MX 10 mx.one
mx.one IN A 127.0.0.25
mx.one IN AAAA 2001:db8::25
two IN MX 20 b.two
two IN MX 10 a.two
a.two IN A 127.0.0.26
b.two IN A 127.0.0.27
implicit IN A 127.0.0.28
null IN MX 0 .
gone IN MX 10 nothere.gone
www.gone IN A 127.0.0.80
alias IN MX 10 mail.alias
mail.alias IN CNAME mx.one
"""


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module", params=["yes", "no"], ids=["minimal", "full-responses"])
def nsd(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("nsd")
    address = "127.0.0.1"
    port = _free_port(address)
    (work / "nsd.test.zone").write_text(ZONE)
    (work / "nsd.conf").write_text(
        f"""server:
  ip-address: {address}
  port: {port}
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "{work}"
  database: ""
  zonelistfile: "{work}/zone.list"
  xfrdfile: "{work}/xfrd.state"
  xfrdir: "{work}"
  pidfile: "{work}/nsd.pid"
  logfile: "{work}/nsd.log"
  minimal-responses: {request.param}
  rrl-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: nsd.test
  zonefile: "{work}/nsd.test.zone"
"""
    )
    proc = subprocess.Popen(["nsd", "-d", "-c", str(work / "nsd.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60  # each try starts a python: slow on a busy machine
        while time.monotonic() < deadline:
            p = scan_cli(["-", "--resolver", f"{address}:{port}", "--timeout", "0.3", "--retries", "0"],
                         stdin="one.nsd.test\n")  # fmt: skip
            if p.returncode == 0 and '"status":"ok"' in p.stdout:
                break
            if proc.poll() is not None:
                pytest.fail(f"nsd exited: {(work / 'nsd.log').read_text() if (work / 'nsd.log').exists() else ''}")
            time.sleep(0.2)
        yield f"{address}:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_scan_through_nsd(nsd: str) -> None:
    names = ["one", "two", "implicit", "null", "gone", "alias", "nothing"]
    p = scan_cli(["-", "--resolver", nsd], stdin="\n".join(f"{n}.nsd.test" for n in names) + "\n")
    assert p.returncode == 0, p.stderr
    got = {r["domain"].split(".")[0]: r for r in records(p.stdout)}
    short = {n: (r["status"], r["route"], [(h["name"], h["preference"], h["a"], h["aaaa"]) for h in r["hosts"]])
             for n, r in got.items()}  # fmt: skip
    assert short == {
        "one": ("ok", "mx", [("mx.one.nsd.test", 10, ["127.0.0.25"], ["2001:db8::25"])]),
        "two": ("ok", "mx", [("a.two.nsd.test", 10, ["127.0.0.26"], []), ("b.two.nsd.test", 20, ["127.0.0.27"], [])]),
        "implicit": ("ok", "implicit", [("implicit.nsd.test", 0, ["127.0.0.28"], [])]),
        "null": ("null", "null", []),
        "gone": ("no-address", "mx", [("nothere.gone.nsd.test", 10, [], [])]),
        "alias": ("ok", "mx", [("mail.alias.nsd.test", 10, ["127.0.0.25"], ["2001:db8::25"])]),
        "nothing": ("nxdomain", "none", []),
    }
    assert got["alias"]["hosts"][0]["cname"] == "mx.one.nsd.test" and "MX_TARGET_IS_CNAME" in got["alias"]["findings"]
    assert got["two"]["hosts"][0]["aaaa_status"] == "nodata" and not any(
        c.startswith("AAAA_") for c in got["two"]["findings"]
    )
