"""Scenario loading: the built-ins, the generated hierarchy, and one-line errors for malformed files."""

from __future__ import annotations

from pathlib import Path

import dns.rdatatype
import pytest

from _helpers import MINIMAL_SCENARIO
from mxdoctor.checks import _registry as registry
from mxdoctor.errors import ScenarioError
from mxdoctor.lab import scenario

MINIMAL = MINIMAL_SCENARIO


def catalogue_codes() -> set[str]:
    registry.load_families()
    return {spec.code for spec in registry.catalogue()}


@pytest.mark.parametrize("name", scenario.builtin_names())
def test_builtin_scenarios_are_complete(name: str) -> None:
    loaded = scenario.load(name)
    assert loaded.name == name
    assert loaded.description and "\n" not in loaded.description
    assert loaded.domains
    expect = loaded.expect
    assert expect.findings and expect.diagnosis
    # Every code a scenario names is one the checks can emit.
    assert set(expect.findings) | set(expect.forbidden) <= catalogue_codes()
    assert expect.verdicts and set(expect.verdicts) <= set(scenario.MTAS)
    assert {s.name for s in loaded.resolvers} >= {"internal", "external"}
    assert loaded.root_hints == (scenario.ROOT_SERVER,)
    addresses = [s.address for s in loaded.servers]
    assert len(addresses) == len(set(addresses))


def test_all_twenty_four_builtins_exist() -> None:
    # the audit-* scenarios belong to `mxdoctor audit` (tests/audit), the dnssec-* ones to tests/lab/test_lab_dnssec.py
    assert [n for n in scenario.builtin_names() if not n.startswith(("audit-", "dnssec-"))] == sorted(
        [
            "healthy", "aaaa-servfail", "aaaa-nxdomain", "aaaa-dropped", "aaaa-refused", "aaaa-broken",
            "mx-servfail", "domain-nxdomain", "null-mx", "mx-cname", "no-address", "lame-delegation",
            "ns-disagree", "internal-resolver-stale", "internal-forwarder-broken", "edns-intolerant",
            "edns-dropped", "tcp-refused-truncated", "smtp-tempfail", "ipv6-only-mx", "multi-mx-partial",
            "mx-literal", "cname-loop", "cname-chain", "a-servfail-aaaa-ok", "mx-nxdomain", "no-mx", "smtp-refused",
            "a-servfail-aaaa-refused",
        ]
    )  # fmt: skip


def test_seed_verdicts_follow_the_research_table() -> None:
    seed = scenario.load("aaaa-servfail").expect.verdicts
    assert seed == {
        "exchange2010": "defer",
        "exchange2013": "deliver",
        "postfix": "deliver",
        "exim": "deliver",
        "sendmail": "defer",
        "opensmtpd": "deliver",
    }
    assert set(scenario.load("mx-servfail").expect.verdicts.values()) == {"defer"}
    assert set(scenario.load("domain-nxdomain").expect.verdicts.values()) == {"bounce"}
    assert set(scenario.load("null-mx").expect.verdicts.values()) == {"bounce"}


def test_loader_generates_root_tlds_soa_ns_and_delegations() -> None:
    loaded = scenario.parse(MINIMAL, source="m.toml", name="m")
    origins = [z.origin for z in loaded.zones]
    assert origins == [".", "com.", "net.", "example.com."]
    assert [z.generated for z in loaded.zones] == [True, True, True, False]
    leaf = loaded.zone("example.com").parse()
    assert leaf.get_rdataset("example.com.", "SOA") is not None
    assert [r.to_text() for r in leaf.get_rdataset("example.com.", "NS")] == ["ns1.example.com."]
    com = loaded.zone("com.").parse()
    assert [r.to_text() for r in com.get_rdataset("example.com.", "NS")] == ["ns1.example.com."]
    assert [r.to_text() for r in com.get_rdataset("ns1.example.com.", "A")] == ["127.0.0.11"]
    root = loaded.zone(".").parse()
    assert root.get_rdataset("com.", "NS") is not None
    assert [r.to_text() for r in root.get_rdataset("a.gtld-servers.net.", "A")] == ["127.0.0.3"]
    net = loaded.zone("net.").parse()
    assert [r.to_text() for r in net.get_rdataset("a.root-servers.net.", "A")] == ["127.0.0.2"]
    assert loaded.server("internal").address == "127.0.0.10"
    assert loaded.server("external").address == "127.0.0.20"
    assert loaded.servers_of("com.")[0].name == "a.gtld-servers.net."


def test_explicit_zone_ns_and_parent_override_are_kept() -> None:
    text = MINIMAL.replace(
        'text = "@ MX 10 mx1\\nmx1 A 127.0.0.25"',
        'text = "@ NS ns1.example.com.\\n@ NS ghost.example.org.\\n@ MX 10 mx1\\nmx1 A 127.0.0.25"',
    )
    loaded = scenario.parse(text, source="o.toml")
    com = loaded.zone("com.").parse()
    assert sorted(r.to_text() for r in com.get_rdataset("example.com.", "NS")) == [
        "ghost.example.org.",
        "ns1.example.com.",
    ]
    # Only declared zones and server names make TLDs: the ghost name stays unresolvable, as it should.
    assert "org." not in [z.origin for z in loaded.zones]


def test_lame_listing_puts_a_server_in_the_delegation_without_the_zone() -> None:
    text = MINIMAL + '\n[[servers]]\nname = "ns2.example.net"\naddress = "127.0.0.13"\nlame = ["example.com"]\n'
    loaded = scenario.parse(text, source="l.toml")
    com = loaded.zone("com.").parse()
    assert sorted(r.to_text() for r in com.get_rdataset("example.com.", dns.rdatatype.NS)) == [
        "ns1.example.com.",
        "ns2.example.net.",
    ]
    assert loaded.server("ns2.example.net").zones == ()
    net = loaded.zone("net.").parse()
    assert [r.to_text() for r in net.get_rdataset("ns2.example.net.", "A")] == ["127.0.0.13"]


def test_addresses_are_assigned_when_left_out() -> None:
    text = MINIMAL.replace('address = "127.0.0.11"\n', "")
    loaded = scenario.parse(text + '\n[[servers]]\nname = "internal"\nrole = "recursive"\n', source="a.toml")
    assert loaded.server("ns1.example.com").address == "127.0.0.30"
    assert loaded.server("internal").address == "127.0.0.10"


def test_smtp_addresses_come_from_the_zone() -> None:
    text = MINIMAL.replace("mx1 A 127.0.0.25", "mx1 A 127.0.0.25\\nmx1 AAAA ::1")
    loaded = scenario.parse(text + '\n[[smtp]]\nhost = "mx1.example.com"\n', source="s.toml")
    assert loaded.smtp[0].addresses == ("127.0.0.25", "::1")
    assert loaded.smtp[0].greeting == 220 and loaded.smtp[0].starttls


def _replace(old: str, new: str) -> str:
    assert old in MINIMAL
    return MINIMAL.replace(old, new)


SERVER = '\n[[servers]]\nname = "ns9.example.com"\naddress = "127.0.0.19"\nzones = ["example.com"]\n'

MALFORMED: list[tuple[str, str, str, str]] = [
    ("not-toml", "description = ", "", "not valid TOML"),
    ("no-description", _replace('description = "minimal"', ""), "description", "missing"),
    ("no-domains", _replace('domains = ["example.com"]', ""), "domains", "missing"),
    ("unknown-top-key", "zonez = 1\n" + MINIMAL, "zonez", "unknown key"),
    ("bad-zone-text", _replace("@ MX 10 mx1", "@ MX ten mx1"), "zones.example.com", "bad zone text"),
    ("zone-name-outside", _replace("mx1 A", "mx1.example.org. A"), "zones.example.com", "outside the zone"),
    ("bad-role", _replace('zones = ["example.com"]', 'zones = ["example.com"]\nrole = "cache"'),
     "servers[0].role", "expected one of authoritative, recursive, forwarder; got 'cache'"),
    ("public-address", _replace("127.0.0.11", "192.0.2.1"), "servers[0].address", "not a loopback address"),
    ("bad-address", _replace("127.0.0.11", "localhost"), "servers[0].address", "not an IP address"),
    ("undeclared-zone", _replace('zones = ["example.com"]', 'zones = ["example.org"]'),
     "servers[0].zones[0]", "not declared"),
    ("zone-without-server", _replace('zones = ["example.com"]', "zones = []"),
     "zones.example.com", "no authoritative server"),
    ("fault-kind", MINIMAL + 'faults = [{ kind = "explode" }]\n', "servers[0].faults[0].kind",
     "expected one of rcode, drop"),
    ("fault-no-rcode", MINIMAL + 'faults = [{ kind = "rcode" }]\n', "servers[0].faults[0].rcode", "missing"),
    ("fault-bad-rcode", MINIMAL + 'faults = [{ kind = "rcode", rcode = "OOPS" }]\n',
     "servers[0].faults[0].rcode", "expected one of SERVFAIL, NXDOMAIN"),
    ("fault-bad-qtype", MINIMAL + 'faults = [{ kind = "drop", qtype = "BOGUS" }]\n',
     "servers[0].faults[0].qtype", "unknown record type"),
    ("fault-unknown-key", MINIMAL + 'faults = [{ kind = "drop", when = "always" }]\n',
     "servers[0].faults[0].when", "unknown fault key"),
    ("fault-long-delay", MINIMAL + 'faults = [{ kind = "delay", seconds = 600 }]\n',
     "servers[0].faults[0].seconds", "from 0 to 60"),
    ("fault-transport", MINIMAL + 'faults = [{ kind = "drop", transport = "sctp" }]\n',
     "servers[0].faults[0].transport", "udp, tcp"),
    ("faults-not-array", MINIMAL + 'faults = "drop"\n', "servers[0].faults", "expected `array`, got `str`"),
    ("shared-address", MINIMAL + SERVER.replace("127.0.0.19", "127.0.0.11"), "servers", "share the address"),
    ("twice", MINIMAL + SERVER.replace("ns9", "ns1"), "servers[1].name", "declared twice"),
    ("forwarder-unknown", MINIMAL + '\n[[servers]]\nname = "internal"\nrole = "recursive"\nforwarders = ["isp"]\n',
     "servers[1].forwarders[0]", "neither a server"),
    ("forwarder-without", MINIMAL + '\n[[servers]]\nname = "internal"\nrole = "forwarder"\n',
     "servers[1].forwarders", "missing"),
    ("stale-bad-rdata",
     MINIMAL + '\n[[servers]]\nname = "internal"\nrole = "recursive"\n'
     'stale = [{ name = "mx1.example.com", type = "A", rdata = "not-an-address" }]\n',
     "servers[1].stale[0].rdata", "bad A data"),
    ("smtp-greeting", MINIMAL + '\n[[smtp]]\nhost = "mx1.example.com"\ngreeting = 99\n',
     "smtp[0].greeting", "reply code"),
    ("smtp-no-address", MINIMAL + '\n[[smtp]]\nhost = "mx9.example.com"\n', "smtp[0].addresses", "no A/AAAA"),
    ("verdict-mta", MINIMAL + '\n[expect.verdicts]\nqmail = "deliver"\n', "expect.verdicts.qmail", "unknown MTA"),
    ("verdict-value", MINIMAL + '\n[expect.verdicts]\npostfix = "retry"\n', "expect.verdicts.postfix",
     "deliver, defer or bounce"),
    ("finding-code", MINIMAL + '\n[expect]\nfindings = ["aaaa servfail"]\n', "expect.findings[0]", "UPPER_SNAKE"),
    ("finding-both", MINIMAL + '\n[expect]\nfindings = ["NULL_MX"]\nforbidden = ["NULL_MX"]\n',
     "expect.forbidden", "both expected and forbidden"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "key", "problem"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_scenario_names_file_key_and_problem(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        scenario.load(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_missing_scenario_names_the_builtins() -> None:
    with pytest.raises(ScenarioError) as caught:
        scenario.load("no-such-scenario")
    assert "healthy" in str(caught.value)
    with pytest.raises(ScenarioError, match="cannot read"):
        scenario.load(Path("/nonexistent/dir/s.toml"))
