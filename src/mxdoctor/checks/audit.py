"""Audit findings: how each authoritative server of the mail domain's and the MX hosts' zones answers
the probe set (RFC 3597, 6891, 7766, 8020, 4343, 1035), and whether the servers agree with each other.

``Judge`` judges every probe of an Evidence (pass, fail or no answer, with the finding spec a failure
maps to); the checks and the audit matrix read it. Reads only ``Evidence.audit`` (empty for diagnose
runs, so these checks say nothing there); reuses the AAAA, lame-delegation, EDNS, TCP and
disagreement codes of the other families for the same facts.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mxdoctor import route as route_mod
from mxdoctor.checks import _audit_dnssec, _dnssec, address, dnssec, mx, nameserver
from mxdoctor.checks._audit_dnssec import Fault
from mxdoctor.checks._context import Context
from mxdoctor.checks._registry import FindingSpec, Role, check, finding
from mxdoctor.diagnosis import Finding, Seen, Severity
from mxdoctor.dns import probeset
from mxdoctor.evidence import AuditProbe, Evidence, Exchange, Outcome, Server, Transport
from mxdoctor.route import Route

AUDIT_VIEW = "authoritative"
_NOTHING = "Nothing to change on the sending side."


def _server_fix(what: str) -> str:
    return (
        f"On every server of {{zone}}: {what}. Check each server with the `reproduce` commands; upgrade or "
        "reconfigure the name server software, or the firewall or load balancer in front of it, until every "
        "one passes."
    )


UNKNOWN_TYPE_MISHANDLED = finding(
    "UNKNOWN_TYPE_MISHANDLED",
    Severity.ERROR,
    Role.SERVER_DEFECT,
    "Queries for an unknown record type are mishandled",
    "Queries for a type unknown to the server ({qtype}, e.g. {qname}) are answered {rcode} instead of "
    "NOERROR with no data by {servers}.",
    "RFC 3597 requires servers to answer queries for types they do not implement like any other type: "
    "NOERROR with no data when the name has none. A server that fails them fails the next new type as "
    "well, and mail depends on newer types: TLSA for DANE (Postfix and Exim defer when the TLSA lookup "
    "fails), and AAAA was once one (RFC 4074).",
    sender=_NOTHING,
    receiver=_server_fix("answer NOERROR/no data to unknown types"),
    rfcs=("RFC 3597 §3", "RFC 4074 §3"),
)
EDNS_VERSION_IGNORED = finding(
    "EDNS_VERSION_IGNORED",
    Severity.WARNING,
    Role.SERVER_DEFECT,
    "EDNS version is not negotiated (no BADVERS)",
    "An EDNS version 1 query is not answered BADVERS by {servers}: {detail}.",
    "RFC 6891 §6.1.3: a server that does not implement the EDNS version asked must answer BADVERS and "
    "state the version it supports, so that a later EDNS version can be introduced; a server that "
    "answers as if the query were version 0, or not at all, blocks that negotiation.",
    sender=_NOTHING,
    receiver=_server_fix("answer BADVERS to EDNS versions above 0"),
    rfcs=("RFC 6891 §6.1.3",),
)
EDNS_OPTION_MISHANDLED = finding(
    "EDNS_OPTION_MISHANDLED",
    Severity.ERROR,
    Role.SERVER_DEFECT,
    "Queries with an unknown EDNS option are mishandled",
    "A query carrying an unknown EDNS option is mishandled by {servers}: {detail}.",
    "RFC 6891 §6.1.2: options a server does not understand must be ignored. Resolvers send options "
    "(cookies, client subnet, padding) on every query; a server that drops or rejects them looks dead "
    "to those resolvers, which then answer SERVFAIL to the sending MTA.",
    sender="Nothing reliable on the sending side.",
    receiver=_server_fix("ignore unknown EDNS options"),
    rfcs=("RFC 6891 §6.1.2", "RFC 7873 §5.2"),
)
EDNS_FLAG_MISHANDLED = finding(
    "EDNS_FLAG_MISHANDLED",
    Severity.WARNING,
    Role.SERVER_DEFECT,
    "Queries with an undefined EDNS flag are mishandled",
    "A query with an undefined EDNS flag set is mishandled by {servers}: {detail}.",
    "RFC 6891 §6.1.4: undefined EDNS flags must be ignored by the server and left clear in the reply; "
    "a server that fails such queries will break when a new flag comes into use.",
    sender=_NOTHING,
    receiver=_server_fix("ignore undefined EDNS flags"),
    rfcs=("RFC 6891 §6.1.4",),
)
NO_TRUNCATION = finding(
    "NO_TRUNCATION",
    Severity.WARNING,
    Role.SERVER_DEFECT,
    "Answers are not truncated for a small UDP buffer",
    "{qname} {qtype} asked with DO and a 512-byte buffer is answered wrongly by {servers}: {detail}.",
    "A server must keep a UDP reply within the buffer size the query advertises and set TC when the "
    "answer does not fit, so that the resolver retries over TCP. Oversized replies are fragmented or "
    "dropped on the way; silently shortened ones lose records.",
    sender=_NOTHING,
    receiver=_server_fix("honour the EDNS buffer size and set TC"),
    rfcs=("RFC 6891 §7", "RFC 1035 §4.2.1", "RFC 2181 §9"),
)
QNAME_CASE_MISHANDLED = finding(
    "QNAME_CASE_MISHANDLED",
    Severity.WARNING,
    Role.SERVER_DEFECT,
    "The letter case of the question is not preserved",
    "Names asked in mixed case (e.g. {qname}) are mishandled by {servers}: {detail}.",
    "Names compare without regard to case, and the question must come back exactly as it was asked. "
    "Resolvers that randomise the case of the question against spoofing (DNS 0x20) discard replies "
    "that change it, and then fail or retry.",
    sender=_NOTHING,
    receiver=_server_fix("echo the question unchanged and answer case-insensitively"),
    rfcs=("RFC 4343 §3", "RFC 1035 §7.3"),
)
NXDOMAIN_FOR_EMPTY_NONTERMINAL = finding(
    "NXDOMAIN_FOR_EMPTY_NONTERMINAL",
    Severity.ERROR,
    Role.SERVER_DEFECT,
    "NXDOMAIN for a name that has names below it",
    "{qname} is answered NXDOMAIN by {servers}, although names below it exist.",
    "RFC 8020: NXDOMAIN means nothing exists at or below the name, and resolvers may cache it so for "
    "the whole subtree. An MX host below that name then vanishes from those resolvers, and mail "
    "bounces or defers.",
    sender="Flush the resolver's cache for the name; nothing lasting on the sending side.",
    receiver=_server_fix("answer NOERROR with no data for empty non-terminals"),
    rfcs=("RFC 8020 §2", "RFC 4592 §2.2.2"),
)
NXDOMAIN_MISHANDLED = finding(
    "NXDOMAIN_MISHANDLED",
    Severity.WARNING,
    Role.SERVER_DEFECT,
    "A name that does not exist is not answered NXDOMAIN with the SOA",
    "The non-existent name {qname} is answered badly by {servers}: {detail}.",
    "A name that does not exist must get NXDOMAIN with the zone's SOA in the authority section, so "
    "resolvers can cache the denial for the SOA's negative TTL; errors or silence instead make every "
    "lookup of a mistyped or retired MX host slow and uncertain.",
    sender=_NOTHING,
    receiver=_server_fix("answer NXDOMAIN with the SOA for names that do not exist"),
    rfcs=("RFC 2308 §2.1", "RFC 1034 §4.3.2"),
)
SOA_SERIAL_MISMATCH = finding(
    "SOA_SERIAL_MISMATCH",
    Severity.WARNING,
    Role.INCONSISTENT,
    "The servers of a zone serve different SOA serials",
    "The servers of {zone} serve different SOA serials: {detail}.",
    "Different serials mean some secondaries have not loaded the latest zone: a record just changed "
    "(a new MX host, a fixed AAAA) is seen by some resolvers and not by others.",
    sender=_NOTHING,
    receiver="Make every server of {zone} load the current zone (zone transfers, NOTIFY, or the "
    "provider's sync) and check that the serials agree: dig @<each server> {zone} SOA +norecurse",
    rfcs=("RFC 1034 §4.3.5", "RFC 1996"),
)
NS_SET_MISMATCH = finding(
    "NS_SET_MISMATCH",
    Severity.WARNING,
    Role.INCONSISTENT,
    "The NS set differs between servers or from the parent",
    "The NS set of {zone} differs ({detail}).",
    "The parent's delegation and the zone's own NS records must name the same servers, and every "
    "server must serve the same NS set; otherwise resolvers ask servers that are not meant to serve "
    "the zone, or never ask some that are.",
    sender=_NOTHING,
    receiver="Make the NS records in {zone} and the delegation at its parent name the same servers.",
    rfcs=("RFC 1034 §4.2.2", "RFC 2181 §5.4.1"),
)
OPCODE_MISHANDLED = finding(
    "OPCODE_MISHANDLED",
    Severity.WARNING,
    Role.SERVER_DEFECT,
    "An unknown opcode is not answered NOTIMP",
    "A query with an unknown opcode gets {rcode} instead of NOTIMP from {servers}.",
    "A server must answer NOTIMP to an opcode it does not implement; silence or an answer makes new "
    "opcodes impossible to deploy and shows a middlebox or server that parses DNS loosely.",
    sender=_NOTHING,
    receiver=_server_fix("answer NOTIMP to unknown opcodes"),
    rfcs=("RFC 1035 §4.1.1", "RFC 6895 §2.2"),
)
ZFLAG_MISHANDLED = finding(
    "ZFLAG_MISHANDLED",
    Severity.WARNING,
    Role.SERVER_DEFECT,
    "Queries with the Z bit set are mishandled",
    "A query with the reserved Z bit set is mishandled by {servers}: {detail}.",
    "The Z bit is reserved: a server must ignore it in queries and leave it clear in replies. A server "
    "that drops or fails such queries breaks as soon as the bit gets a meaning.",
    sender=_NOTHING,
    receiver=_server_fix("ignore the Z bit"),
    rfcs=("RFC 1035 §4.1.1", "RFC 6895 §2"),
)
NOT_AUTHORITATIVE = finding(
    "NOT_AUTHORITATIVE",
    Severity.ERROR,
    Role.SERVER_DEFECT,
    "Answers without the AA bit from a server of the zone",
    "Answers for {zone} from {servers} lack the AA bit: {detail}.",
    "Every answer from a server of the zone for the zone's own data must carry AA; resolvers treat "
    "answers without it as lame and discard them, and may end with SERVFAIL.",
    sender=_NOTHING,
    receiver=_server_fix("set AA on every answer from the zone's data"),
    rfcs=("RFC 1035 §4.1.1", "RFC 1034 §4.3.2"),
)
TCP_UNSUPPORTED = finding(
    "TCP_UNSUPPORTED",
    Severity.ERROR,
    Role.SERVER_DEFECT,
    "DNS over TCP does not work",
    "Queries over TCP get no answer from {servers} ({rcode}).",
    "RFC 7766 §5: authoritative servers MUST answer over TCP. Resolvers switch to TCP for any answer "
    "that does not fit in UDP (many MX, TXT or DNSSEC answers) and after spoofing suspicion; without "
    "TCP those lookups fail and the MTA defers.",
    sender="Nothing reliable on the sending side.",
    receiver="Allow TCP port 53 to the servers of {zone} and make them answer over TCP.",
    rfcs=("RFC 7766 §5", "RFC 1035 §4.2.2"),
)
QUERY_FAILED = finding(
    "QUERY_FAILED",
    Severity.ERROR,
    Role.SERVER_DEFECT,
    "An ordinary query fails at a server of the zone",
    "{qname} {qtype} fails at {servers}: {detail}.",
    "A server of the zone must answer every query about the zone's data with the data or with no "
    "data; errors and silence make resolvers retry elsewhere and, when every server fails, answer "
    "SERVFAIL to the MTA.",
    sender="Nothing reliable on the sending side.",
    receiver=_server_fix("answer {qname} {qtype}"),
    rfcs=("RFC 1034 §4.3.2", "RFC 1035 §4.1.1"),
)
NS_UNREACHABLE = finding(
    "NS_UNREACHABLE",
    Severity.ERROR,
    Role.SERVER_DEFECT,
    "A server of the zone answers nothing",
    "{ns_name} ({ns_ip}), a server of {zone}, answers no query at all ({rcode}).",
    "Resolvers spend their time-outs on a dead server before trying the next one; when the others "
    "fail too, or the MTA's lookup budget runs out first, the lookup fails and mail is deferred.",
    sender=_NOTHING,
    receiver="Bring {ns_name} ({ns_ip}) back, or remove it from the NS records of {zone} and the "
    "delegation at the parent.",
    rfcs=("RFC 1034 §4.3.4", "RFC 2182 §3"),
)
# -- DNSSEC, per server of a signed zone -----------------------------------------------------------------

_DNSSEC_RFC = ("RFC 4033", "RFC 4035 §3.1", "RFC 4035 §5")
_WHO = (
    " Where only some servers of {zone} show it, those servers serve another copy of the zone than the "
    "rest (a secondary that stopped transferring it, or signs on its own): make them load the current "
    "signed zone from the primary (NOTIFY, AXFR/IXFR, or the provider's sync)."
)
DNSSEC_SERVER_DNSKEY_BOGUS = finding(
    "DNSSEC_SERVER_DNSKEY_BOGUS",
    Severity.ERROR,
    Role.DNS_FAULT,
    "A server's DNSKEY set does not validate against the parent's DS",
    "The DNSKEY set of {zone} as served by {servers} does not validate against the parent's DS: {detail}.",
    "Validating resolvers build the chain of trust from the parent's DS to the zone's DNSKEY set; a set "
    "without the key the DS names, or without its valid signature, makes everything in the zone bogus "
    "(SERVFAIL, EDE 9 or 6) for every resolver that asks that server.",
    sender=dnssec.DNSSEC_DS_MISMATCH.sender,
    receiver="If every server of {zone} shows it, the key roll is at fault: publish the DS of the current KSK "
    "at the registrar (dnssec-dsfromkey), or sign the DNSKEY set with the KSK the DS names (key {key_tag})." + _WHO,
    rfcs=(*_DNSSEC_RFC, "RFC 7583"),
)
DNSSEC_SERVER_RRSIG_EXPIRED = finding(
    "DNSSEC_SERVER_RRSIG_EXPIRED",
    Severity.ERROR,
    Role.DNS_FAULT,
    "A server serves signatures outside their validity period",
    "Signatures outside their validity period in the signed zone {zone}, served by {servers}: {detail}.",
    "Validating resolvers reject an RRSIG before its inception or after its expiration (SERVFAIL, EDE 7 or "
    "8) for every answer that server gives with it.",
    sender=dnssec.DNSSEC_RRSIG_EXPIRED.sender,
    receiver="Re-sign {zone} (dnssec-signzone, rndc sign {zone}, knotc zone-sign {zone}) so that the RRSIG by "
    "key {key_tag} is replaced, and fix what let it lapse: the signer's schedule (refresh well before expiry) "
    "or its clock." + _WHO,
    rfcs=_DNSSEC_RFC,
)
DNSSEC_SERVER_RRSIG_INVALID = finding(
    "DNSSEC_SERVER_RRSIG_INVALID",
    Severity.ERROR,
    Role.DNS_FAULT,
    "A server serves signatures that do not verify",
    "Signatures that do not verify in the signed zone {zone}, served by {servers}: {detail}.",
    "The data changed after signing, or was signed with a key the zone does not publish: validating "
    "resolvers answer SERVFAIL (EDE 6) for it.",
    sender=dnssec.DNSSEC_RRSIG_INVALID.sender,
    receiver="Re-sign {zone} with its published keys (key {key_tag} must be in the DNSKEY set), and never edit "
    "signed data without re-signing it." + _WHO,
    rfcs=_DNSSEC_RFC,
)
DNSSEC_SERVER_RRSIG_MISSING = finding(
    "DNSSEC_SERVER_RRSIG_MISSING",
    Severity.ERROR,
    Role.DNS_FAULT,
    "A server serves an RRset of a signed zone without its signature",
    "RRsets without an RRSIG in the signed zone {zone}, served by {servers}: {detail}.",
    "The parent's DS says the zone is signed, so an unsigned RRset cannot be told from a forgery: validating "
    "resolvers answer SERVFAIL (EDE 10) for it.",
    sender=dnssec.DNSSEC_RRSIG_MISSING.sender,
    receiver="Re-sign {zone} so that every RRset is signed (the signer skipped this one)." + _WHO,
    rfcs=_DNSSEC_RFC,
)
DNSSEC_SERVER_DENIAL_BOGUS = finding(
    "DNSSEC_SERVER_DENIAL_BOGUS",
    Severity.ERROR,
    Role.DNS_FAULT,
    "A server's negative answers are not proven (NSEC/NSEC3)",
    "The negative answer for {qname} {qtype} in the signed zone {zone} from {servers} has no valid NSEC/NSEC3 "
    "proof: {detail}.",
    "A validating resolver accepts NODATA or NXDOMAIN from a signed zone only with its signed NSEC or NSEC3 "
    "proof; without it the answer is bogus (SERVFAIL, EDE 12 or 6). For an MX host's AAAA that is the "
    "seed case's twin: Exchange 2010 and Sendmail defer while A validates.",
    sender=dnssec.DNSSEC_DENIAL_MISSING.sender,
    receiver="Re-sign {zone} so that its NSEC/NSEC3 chain is complete, and serve the proofs in negative "
    "answers to DO queries." + _WHO,
    rfcs=(*_DNSSEC_RFC, "RFC 5155 §7.2"),
)
DNSSEC_SERVER_DO_MISHANDLED = finding(
    "DNSSEC_SERVER_DO_MISHANDLED",
    Severity.ERROR,
    Role.DNS_FAULT,
    "A server of a signed zone mishandles queries with the DO bit",
    "Queries with the DO bit are mishandled by {servers} (a server of the signed zone {zone}): {detail}.",
    "Validating resolvers send every query with DO (RFC 3225) and need the RRSIGs back; a server (or a "
    "firewall or load balancer in front of it) that fails, drops or strips them turns every answer of a "
    "signed zone into bogus data (SERVFAIL, EDE 10) for the resolvers that ask it.",
    sender=_NOTHING,
    receiver=_server_fix("answer queries with the DO bit with the signed data and its RRSIGs, and let them "
                         "through the firewall or load balancer in front"),
    rfcs=("RFC 3225 §3", "RFC 4035 §3.1", "RFC 6891 §7"),
)
DNSSEC_SERVER_RRSIG_UNASKED = finding(
    "DNSSEC_SERVER_RRSIG_UNASKED",
    Severity.WARNING,
    Role.SERVER_DEFECT,
    "RRSIGs in answers to queries without the DO bit",
    "RRSIG records come back from {servers} for queries without the DO bit ({detail}).",
    "RFC 3225 §3 and RFC 4035 §3.2.1: without DO the server must not add DNSSEC records it was not asked "
    "for. The answers grow for resolvers that do not validate, past 512 bytes for old ones, and a "
    "server that ignores DO in one direction often mishandles it in the other.",
    sender=_NOTHING,
    receiver=_server_fix("add RRSIGs only to answers for queries with the DO bit"),
    rfcs=("RFC 3225 §3", "RFC 4035 §3.2.1"),
)
DNSSEC_SPECS: dict[Fault, FindingSpec] = {
    Fault.DNSKEY: DNSSEC_SERVER_DNSKEY_BOGUS,
    Fault.EXPIRED: DNSSEC_SERVER_RRSIG_EXPIRED,
    Fault.INVALID: DNSSEC_SERVER_RRSIG_INVALID,
    Fault.MISSING: DNSSEC_SERVER_RRSIG_MISSING,
    Fault.DENIAL: DNSSEC_SERVER_DENIAL_BOGUS,
    Fault.DO: DNSSEC_SERVER_DO_MISHANDLED,
    Fault.UNREADABLE: dnssec.DNSSEC_RECORD_UNREADABLE,
    Fault.NOT_JUDGED: QUERY_FAILED,
}

AUDIT_OK = finding(
    "AUDIT_OK",
    Severity.INFO,
    Role.POSITIVE,
    "Every server passes every audit probe",
    "Every authoritative server of {zone} answers every audit probe as the RFCs expect.",
    "The servers answer A, AAAA, MX, TXT and unknown types, non-existent names and empty non-terminals, "
    "mixed-case questions, EDNS (versions, options, flags, small buffers), TCP, unknown opcodes and "
    "the Z bit correctly, and agree with each other.",
    rfcs=("RFC 4074", "RFC 6891", "RFC 7766"),
)

# facts about one name (subject "qname qtype"); the rest are facts about a zone's servers
_NAME_SPECS = {
    NXDOMAIN_FOR_EMPTY_NONTERMINAL, QUERY_FAILED, address.AAAA_SERVFAIL, address.AAAA_NXDOMAIN,
    address.AAAA_TIMEOUT, address.AAAA_UNEXPECTED_RCODE, address.AAAA_BROKEN_RESPONSE,
}  # fmt: skip


def ns_label(server: Server) -> str:
    return f"{server.name or server.address} ({server.address})"


# specs other families emit for the same fact: their seen/reproduce format, so merged lines dedupe
_SHARED = {
    address.AAAA_SERVFAIL, address.AAAA_NXDOMAIN, address.AAAA_TIMEOUT, address.AAAA_UNEXPECTED_RCODE,
    address.AAAA_BROKEN_RESPONSE, address.A_LOOKUP_FAILED, mx.MX_LOOKUP_FAILED,
}  # fmt: skip


# -- the judgement of each probe ----------------------------------------------------------------------


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_ANSWER = "no answer"


@dataclass(frozen=True)
class Result:
    """What one probe got from one server address, judged."""

    probe: AuditProbe
    exchange: Exchange | None  # the last attempt
    status: Status
    rcode: str  # RCODE of the reply, or TIMEOUT / NETWORK_ERROR / MALFORMED
    detail: str = ""  # why it failed, in words
    spec: FindingSpec | None = None  # the finding a failure maps to (None when it passes)
    dnssec: _audit_dnssec.Verdict | None = None  # a DNSSEC probe's validation

    @property
    def ok(self) -> bool:
        return self.status is Status.PASS


_SILENT = (Outcome.TIMEOUT, Outcome.NETWORK_ERROR)
_DATA = (Outcome.NOERROR, Outcome.NODATA)
_AAAA_SPECS = {
    Outcome.SERVFAIL: address.AAAA_SERVFAIL,
    Outcome.TIMEOUT: address.AAAA_TIMEOUT,
    Outcome.NETWORK_ERROR: address.AAAA_TIMEOUT,
    Outcome.NXDOMAIN: address.AAAA_NXDOMAIN,
    Outcome.BROKEN: address.AAAA_BROKEN_RESPONSE,
    Outcome.MALFORMED: address.AAAA_BROKEN_RESPONSE,
}
# the finding a failed probe maps to, unless a rule below says otherwise
_FAILURE_SPECS: dict[str, FindingSpec] = {
    "a": QUERY_FAILED,
    "aaaa": address.AAAA_UNEXPECTED_RCODE,
    "mx": QUERY_FAILED,
    "txt": QUERY_FAILED,
    "unknown-type": UNKNOWN_TYPE_MISHANDLED,
    "case": QNAME_CASE_MISHANDLED,
    "soa": QUERY_FAILED,
    "ns": QUERY_FAILED,
    "nxdomain": NXDOMAIN_MISHANDLED,
    "ent": NXDOMAIN_FOR_EMPTY_NONTERMINAL,
    "plain": QUERY_FAILED,
    "edns": nameserver.EDNS_INTOLERANT,
    "edns1": EDNS_VERSION_IGNORED,
    "ednsopt": EDNS_OPTION_MISHANDLED,
    "ednsflags": EDNS_FLAG_MISHANDLED,
    "do512": NO_TRUNCATION,
    "tcp": TCP_UNSUPPORTED,
    "ednstcp": TCP_UNSUPPORTED,
    "opcode": OPCODE_MISHANDLED,
    "zflag": ZFLAG_MISHANDLED,
}
# Probes whose answers must carry AA: every query for data the server is authoritative for.
AUTHORITATIVE_PROBES = frozenset(
    {"a", "aaaa", "mx", "txt", "unknown-type", "case", "soa", "ns", "nxdomain", "ent", "plain", "edns",
     "ednsopt", "ednsflags", "tcp", "ednstcp", "zflag"}
)  # fmt: skip


def rcode_of(x: Exchange | None) -> str:
    if x is None:
        return "NOT SENT"
    if x.rcode is not None:
        return x.rcode
    return x.outcome.value


def _has_soa(x: Exchange) -> bool:
    return any(" SOA " in f" {rr} " for rr in x.authority)


class Judge:
    """Judges every probe of an Evidence; some judgements compare probes of the same server."""

    def __init__(self, ev: Evidence) -> None:
        self.ev = ev
        self.by_id = {x.id: x for x in ev.exchanges if x.probe is not None}
        self.index: dict[tuple[str, str, str, str], AuditProbe] = {}
        for p in ev.audit:
            self.index[(p.server.address, p.name, p.qname.lower(), p.zone)] = p
        self.dnssec = _audit_dnssec.of_evidence(ev)
        self.results = [self._judge(p) for p in ev.audit]
        self.lame = self._lame_servers()
        self.edns_broken = {
            r.probe.server.address for r in self.results if r.probe.name == "edns" and not r.ok
        }
        # servers that mishandle the DO bit: every other probe with DO fails for that reason
        self.do_broken = {
            r.probe.server.address for r in self.results if r.dnssec is not None and r.dnssec.fault is Fault.DO
        }

    def last(self, p: AuditProbe) -> Exchange | None:
        return self.by_id.get(p.exchanges[-1]) if p.exchanges else None

    def sibling(self, p: AuditProbe, name: str, qname: str | None = None) -> Exchange | None:
        other = self.index.get((p.server.address, name, (qname or p.qname).lower(), p.zone))
        return self.last(other) if other is not None else None

    def _lame_servers(self) -> set[str]:
        """Addresses that answered no probe authoritatively: lame, not a pile of separate faults."""
        answered: dict[str, bool] = defaultdict(bool)
        asked: set[str] = set()
        for r in self.results:
            if r.probe.name not in AUTHORITATIVE_PROBES or r.exchange is None:
                continue
            addr = r.probe.server.address
            asked.add(addr)
            x = r.exchange
            if x.outcome.is_answer and "AA" in x.flags:
                answered[addr] = True
        replied = {
            r.probe.server.address for r in self.results if r.exchange and r.exchange.outcome not in _SILENT
        }
        return {a for a in asked if not answered[a] and a in replied}

    def _judge(self, p: AuditProbe) -> Result:
        x = self.last(p)
        rcode = rcode_of(x)
        if p.name in probeset.BY_NAME and probeset.BY_NAME[p.name].dnssec:
            return self._judge_dnssec(p, x, rcode)
        spec = _FAILURE_SPECS.get(p.name, QUERY_FAILED)
        if x is None:
            return Result(p, None, Status.NO_ANSWER, rcode, "not sent", spec)
        if p.name == "aaaa":
            spec = _AAAA_SPECS.get(x.outcome, spec)
        if x.outcome in _SILENT:
            return Result(p, x, Status.NO_ANSWER, x.outcome.value, x.error or "no reply", spec)
        problem = self._problem(p, x)
        if problem is None:
            return Result(p, x, Status.PASS, rcode)
        detail, override = problem
        return Result(p, x, Status.FAIL, rcode, detail, override or spec)

    def _judge_dnssec(self, p: AuditProbe, x: Exchange | None, rcode: str) -> Result:
        v = self.dnssec.judge(p)
        if v.fault is None:
            return Result(p, x, Status.PASS, rcode, v.detail, dnssec=v)
        silent = x is None or x.outcome in _SILENT
        status = Status.NO_ANSWER if silent and v.fault is Fault.NOT_JUDGED else Status.FAIL
        return Result(p, x, status, rcode, v.detail, DNSSEC_SPECS[v.fault], v)

    def _problem(self, p: AuditProbe, x: Exchange) -> tuple[str, FindingSpec | None] | None:
        """(what is wrong, the finding or None for the probe's own) or None when the reply is right."""
        name = p.name
        if x.outcome in (Outcome.MALFORMED, Outcome.BROKEN):
            return (x.error or "unreadable reply", None)
        if name == "case":
            plain = self.sibling(p, "a", p.qname.lower())
            if plain is not None and (plain.outcome, _answer_rdata(plain)) == (x.outcome, _answer_rdata(x)):
                return self._case(p, x)  # the same answer as the lower-case name: only the echo counts
        expects_data = name in ("a", "aaaa", "mx", "txt", "unknown-type", "case", "ent")
        if expects_data:
            if x.outcome is Outcome.NXDOMAIN:
                if name == "ent":
                    return ("NXDOMAIN for a name that has names below it", None)
                exists = self._exists_at(p)
                if exists:
                    return (f"NXDOMAIN for a name that has {exists}", None)
            elif x.outcome not in _DATA:
                return (f"{rcode_of(x)} instead of NOERROR", QUERY_FAILED if name == "ent" else None)
        if name in AUTHORITATIVE_PROBES and x.outcome.is_answer and "AA" not in x.flags:
            return (f"{x.qtype} {x.outcome.value} answer without the AA bit", NOT_AUTHORITATIVE)
        if name == "case":
            return self._case(p, x)
        if name in ("soa", "ns", "plain", "edns", "ednsopt", "ednsflags", "tcp", "ednstcp", "zflag"):
            if x.outcome is not Outcome.NOERROR:
                return (f"{rcode_of(x)} instead of NOERROR with the {x.qtype}", None)
        if name == "nxdomain":
            if x.outcome in _DATA:
                return None  # a wildcard may cover the name: nothing to say
            if x.outcome is not Outcome.NXDOMAIN:
                return (f"{rcode_of(x)} instead of NXDOMAIN", None)
            if not _has_soa(x):
                return ("NXDOMAIN without the SOA in the authority section", None)
        if name == "plain" and x.reply_edns is not None:
            return ("an OPT record in the reply to a query without EDNS", None)
        if name in ("edns", "ednstcp", "ednsopt", "ednsflags") and x.reply_edns is None:
            return ("no OPT record in the reply: EDNS ignored", None)
        if name == "edns1":
            if x.rcode == "BADVERS" and x.reply_edns == 0:
                return None
            if x.rcode == "BADVERS":
                return (f"BADVERS with an OPT record of version {x.reply_edns}", None)
            return (f"{rcode_of(x)} instead of BADVERS: the version is not negotiated", None)
        if name == "ednsopt" and any(f.startswith("OPTION=") for f in x.flags):
            return ("the unknown option is echoed in the reply", None)
        if name == "ednsflags" and any(f.startswith("EDNSFLAGS=") for f in x.flags):
            return ("the undefined EDNS flag is echoed in the reply", None)
        if name == "zflag" and "Z" in x.flags:
            return ("the Z bit is set in the reply", None)
        if name == "opcode" and x.outcome is not Outcome.NOTIMP:
            return (f"{rcode_of(x)} instead of NOTIMP", None)
        if name == "do512":
            return self._do512(p, x)
        return None

    def _exists_at(self, p: AuditProbe) -> str:
        """Which other type the same server answered with data for this name ("" if none)."""
        for other in ("a", "aaaa", "mx", "txt"):
            x = self.sibling(p, other)
            if x is not None and x.outcome is Outcome.NOERROR:
                return f"{x.qtype} records"
        return ""

    def _case(self, p: AuditProbe, x: Exchange) -> tuple[str, FindingSpec | None] | None:
        if x.reply_qname is not None and x.reply_qname != p.qname:
            return (f"question echoed as {x.reply_qname}, asked as {p.qname}", None)
        plain = self.sibling(p, "a", p.qname.lower())
        if plain is not None and plain.outcome.is_answer:
            if (plain.outcome, _answer_rdata(plain)) != (x.outcome, _answer_rdata(x)):
                return (f"{x.outcome.value} where the lower-case name gets {plain.outcome.value}", None)
        return None

    def _do512(self, p: AuditProbe, x: Exchange) -> tuple[str, FindingSpec | None] | None:
        buffer = probeset.BY_NAME[p.name].shape.payload
        if x.size is not None and x.size > buffer:
            return (f"a reply of {x.size} bytes to a {buffer}-byte buffer, without TC", None)
        if x.outcome not in _DATA:
            return (f"{rcode_of(x)} instead of an answer or TC", None)
        truncated = "TC" in x.flags
        full = self.sibling(p, x.qtype.lower(), p.qname) if x.qtype in ("MX", "TXT", "NS", "SOA") else None
        if full is not None and not truncated and full.answer and len(x.answer) < len(full.answer):
            return (f"{len(x.answer)} of {len(full.answer)} records without TC", None)
        return None

    # -- views over the results -----------------------------------------------------------------------

    def failures(self) -> Iterable[Result]:
        return (r for r in self.results if not r.ok)

    def truncates(self, address: str) -> bool:
        """The server set TC on some UDP reply (so it relies on TCP working)."""
        return any(
            x.server.address == address and x.transport is Transport.UDP and "TC" in x.flags
            for x in self.ev.exchanges
        )


def _answer_rdata(x: Exchange) -> list[str]:
    return sorted(" ".join(rr.split()[4:]).lower() for rr in x.answer)


def _outcome(r: Result) -> str:
    x = r.exchange
    if x is None:
        return r.rcode
    return x.rcode if x.outcome is Outcome.OTHER_RCODE and x.rcode else x.outcome.value


def dig_for(result: Result, *, shared: bool = False) -> str:
    p = result.probe
    x = result.exchange
    qtype = x.qtype if x is not None else probeset.BY_NAME[p.name].qtype
    cmd = probeset.dig_command(probeset.BY_NAME[p.name], p.server.address, p.server.port, p.qname, qtype)
    if shared:
        return f"{cmd}   # -> {_outcome(result)}"
    return f"{cmd}   # -> {result.rcode}"


def _seen(r: Result, *, shared: bool = False) -> Seen:
    if shared:
        return Seen(AUDIT_VIEW, str(r.probe.server), _outcome(r))
    return Seen(AUDIT_VIEW, str(r.probe.server), f"{r.probe.name}: {r.detail or r.rcode}")


def _dead_servers(judge: Judge) -> dict[str, list[Result]]:
    by: dict[str, list[Result]] = defaultdict(list)
    for r in judge.results:
        by[r.probe.server.address].append(r)
    return {a: rs for a, rs in by.items() if rs and all(r.status is Status.NO_ANSWER for r in rs)}


def _qtype(r: Result) -> str:
    return r.exchange.qtype if r.exchange is not None else probeset.BY_NAME[r.probe.name].qtype


@check(
    UNKNOWN_TYPE_MISHANDLED, EDNS_VERSION_IGNORED, EDNS_OPTION_MISHANDLED, EDNS_FLAG_MISHANDLED,
    NO_TRUNCATION, QNAME_CASE_MISHANDLED, NXDOMAIN_FOR_EMPTY_NONTERMINAL, NXDOMAIN_MISHANDLED,
    OPCODE_MISHANDLED, ZFLAG_MISHANDLED, NOT_AUTHORITATIVE, TCP_UNSUPPORTED, QUERY_FAILED, NS_UNREACHABLE,
)  # fmt: skip
def probe_results(ctx: Context) -> Iterable[Finding]:
    if not ctx.evidence.audit:
        return
    judge = Judge(ctx.evidence)
    route_codes = {(ctx.domain, "MX"): mx.MX_LOOKUP_FAILED}
    route_codes.update({(host, "A"): address.A_LOOKUP_FAILED for host in address.exchanger_hosts(ctx)})
    yield from _findings(judge, ctx.domain, route_codes)


def _findings(judge: Judge, domain: str, route_codes: dict[tuple[str, str], FindingSpec]) -> Iterator[Finding]:
    dead = _dead_servers(judge)
    for addr, rs in sorted(dead.items()):
        p = rs[0].probe
        yield NS_UNREACHABLE.emit(
            f"{p.server.name or addr} {addr}",
            seen=[_seen(rs[0])],
            reproduce=[dig_for(rs[0])],
            exchanges=[i for r in rs for i in r.probe.exchanges],
            ns_name=p.server.name or addr, ns_ip=addr, zone=p.zone, rcode=rs[0].rcode,
        )  # fmt: skip
    groups: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for r in judge.failures():
        addr = r.probe.server.address
        if addr in dead or addr in judge.lame or r.dnssec is not None:
            continue  # the DNSSEC probes have their own check
        edns_sent = probeset.BY_NAME[r.probe.name].shape.edns is not None
        if addr in judge.edns_broken and r.probe.name != "edns" and edns_sent:
            continue  # EDNS_INTOLERANT or EDNS_DROPPED explains every failure of a query that carried EDNS
        if addr in judge.do_broken and probeset.BY_NAME[r.probe.name].shape.do:
            continue  # DNSSEC_SERVER_DO_MISHANDLED explains it
        assert r.spec is not None  # every failure maps to a finding
        if r.spec is nameserver.EDNS_INTOLERANT:
            plain = judge.sibling(r.probe, "plain")
            if r.status is not Status.NO_ANSWER:
                yield _per_server(nameserver.EDNS_INTOLERANT, r)
                continue
            if plain is not None and plain.outcome.is_answer:
                # silence with EDNS, an answer without: no resolver retries without EDNS after a time-out
                yield _edns_dropped(r, plain)
                continue
            r = dataclasses.replace(r, spec=QUERY_FAILED)
        spec = r.spec
        assert spec is not None
        if spec is TCP_UNSUPPORTED and judge.truncates(addr):
            yield _per_server(nameserver.TCP_FAILS, r)
            continue
        if spec in _NAME_SPECS:
            subject = f"{r.probe.qname.lower()} {_qtype(r)}"
        else:
            subject = r.probe.zone
        groups[(spec.code, subject)].append(r)
    for (_, subject), rs in sorted(groups.items()):
        first = rs[0]
        assert first.spec is not None
        spec = first.spec
        qname, qtype = first.probe.qname.lower(), _qtype(first)
        asked = {r.probe.server.address for r in judge.results
                 if (r.probe.name, r.probe.qname.lower()) == (first.probe.name, qname)}
        if spec is QUERY_FAILED and (qname, qtype) in route_codes and asked <= {r.probe.server.address for r in rs}:
            spec = route_codes[(qname, qtype)]  # every server fails it: the route's own finding
        servers = ", ".join(dict.fromkeys(ns_label(r.probe.server) for r in rs))
        rcodes = ", ".join(dict.fromkeys(r.rcode for r in rs))
        details = "; ".join(dict.fromkeys(r.detail for r in rs if r.detail))
        shared = spec in _SHARED
        yield spec.emit(
            subject,
            seen=[_seen(r, shared=shared) for r in rs],
            reproduce=[dig_for(r, shared=shared) for r in rs],
            exchanges=[i for r in rs for i in r.probe.exchanges],
            servers=servers, zone=first.probe.zone, rcode=rcodes, detail=details or rcodes, domain=domain,
            qname=first.probe.qname if first.spec is not QNAME_CASE_MISHANDLED else first.probe.qname.lower(),
            qtype=_qtype(first),
        )  # fmt: skip


def _edns_dropped(r: Result, plain: Exchange) -> Finding:
    """EDNS_DROPPED in the subject form the nameserver family uses, from the ``edns`` and ``plain`` probes."""
    srv, p = r.probe.server, r.probe
    no_edns = probeset.dig_command(probeset.BY_NAME["plain"], srv.address, srv.port, p.qname, plain.qtype)
    return nameserver.EDNS_DROPPED.emit(
        f"{srv.name or srv.address} {srv.address}",
        seen=[Seen(AUDIT_VIEW, str(srv), f"edns: no reply with EDNS, {plain.outcome.value} without")],
        reproduce=[dig_for(r), f"{no_edns}   # -> {plain.outcome.value}"],
        exchanges=(*p.exchanges, plain.id),
        ns_name=srv.name or srv.address, ns_ip=srv.address, qname=p.qname, qtype=plain.qtype,
        detail=f"{plain.outcome.value} without EDNS",
    )  # fmt: skip


def _per_server(spec: FindingSpec, r: Result, rcode: str | None = None) -> Finding:
    """A finding about one server, in the subject form the nameserver family uses (so they merge)."""
    srv = r.probe.server
    return spec.emit(
        f"{srv.name or srv.address} {srv.address}",
        seen=[_seen(r)],
        reproduce=[dig_for(r)],
        exchanges=r.probe.exchanges,
        ns_name=srv.name or srv.address, ns_ip=srv.address, rcode=rcode or r.rcode,
    )  # fmt: skip


@check()  # emits nameserver.LAME_DELEGATION (declared there)
def lame_servers(ctx: Context) -> Iterable[Finding]:
    if not ctx.evidence.audit:
        return
    judge = Judge(ctx.evidence)
    for addr in sorted(judge.lame):
        rs = [r for r in judge.results if r.probe.server.address == addr and r.probe.name == "soa"]
        rs = rs or [r for r in judge.results if r.probe.server.address == addr]
        yield _per_server(nameserver.LAME_DELEGATION, rs[0], rs[0].detail or rs[0].rcode)


# -- consistency across the servers of a zone ---------------------------------------------------------


def _answers(judge: Judge, name: str) -> dict[str, list[tuple[AuditProbe, Exchange]]]:
    """zone -> (probe, last exchange) of every answered probe ``name`` from a live, non-lame server."""
    out: dict[str, list[tuple[AuditProbe, Exchange]]] = defaultdict(list)
    for r in judge.results:
        x = r.exchange
        if r.probe.name != name or x is None or not x.outcome.is_answer:
            continue
        if r.probe.server.address in judge.lame:
            continue
        out[r.probe.zone].append((r.probe, x))
    return out


def _rdata(rr: str) -> str:
    return " ".join(rr.split()[4:]).lower()


@check(SOA_SERIAL_MISMATCH, NS_SET_MISMATCH)  # and nameserver.NS_DISAGREE
def consistency(ctx: Context) -> Iterable[Finding]:
    if not ctx.evidence.audit:
        return
    judge = Judge(ctx.evidence)
    for zone, items in sorted(_answers(judge, "soa").items()):
        serials: dict[str, list[AuditProbe]] = defaultdict(list)
        for p, x in items:
            for rr in x.answer:
                fields = rr.split()
                if len(fields) >= 7 and fields[3].upper() == "SOA":
                    serials[fields[6]].append(p)
        if len(serials) > 1:
            detail = "; ".join(
                f"{s} from {', '.join(ns_label(p.server) for p in ps)}" for s, ps in sorted(serials.items())
            )
            yield SOA_SERIAL_MISMATCH.emit(
                zone,
                seen=[Seen(AUDIT_VIEW, str(p.server), f"serial {s}") for s, ps in serials.items() for p in ps],
                reproduce=[probeset.dig_command(probeset.BY_NAME["soa"], p.server.address, p.server.port, zone, "SOA")
                           for ps in serials.values() for p in ps],
                zone=zone, detail=detail,
            )  # fmt: skip
    parents = {z.name: tuple(sorted(ns.name.lower() for ns in z.nameservers)) for z in ctx.evidence.zones}
    for zone, items in sorted(_answers(judge, "ns").items()):
        sets: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for p, x in items:
            names = tuple(sorted(_rdata(rr) for rr in x.answer if rr.split()[3:4] == ["NS"]))
            sets[names].append(ns_label(p.server))
        parent = parents.get(zone)
        if len(sets) > 1 or (parent and set(sets) != {parent}):
            parts = [f"parent delegation: {', '.join(parent)}"] if parent else []
            parts += [f"{', '.join(who)}: {', '.join(names) or 'none'}" for names, who in sets.items()]
            yield NS_SET_MISMATCH.emit(
                zone,
                seen=[Seen(AUDIT_VIEW, str(p.server), "NS " + " ".join(sorted(_rdata(r) for r in x.answer)))
                      for p, x in items],
                reproduce=[probeset.dig_command(probeset.BY_NAME["ns"], p.server.address, p.server.port, zone, "NS")
                           for p, _ in items],
                zone=zone, detail="; ".join(parts),
            )  # fmt: skip
    for name in ("a", "aaaa", "mx", "txt"):
        by_q: dict[str, list[tuple[AuditProbe, Exchange]]] = defaultdict(list)
        for items in _answers(judge, name).values():
            for p, x in items:
                by_q[p.qname.lower()].append((p, x))
        for qname, items in sorted(by_q.items()):
            kinds: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
            for p, x in items:
                key = (x.outcome.value, tuple(sorted(_rdata(rr) for rr in x.answer if rr.split()[3:4] == [x.qtype])))
                kinds[key].append(p.server.name or p.server.address)
            if len(kinds) < 2:
                continue
            qtype = items[0][1].qtype
            detail = "; ".join(
                f"{'/'.join(who)}: {k[0]}{(' ' + ' '.join(k[1])) if k[1] else ''}" for k, who in kinds.items()
            )
            yield nameserver.NS_DISAGREE.emit(
                f"{qname} {qtype}",
                seen=[Seen(AUDIT_VIEW, str(p.server), x.outcome.value) for p, x in items],
                reproduce=[probeset.dig_command(probeset.BY_NAME[name], p.server.address, p.server.port, qname, qtype)
                           + f"   # -> {x.outcome.value}" for p, x in items],
                qname=qname, qtype=qtype, detail=detail,
            )  # fmt: skip


# -- DNSSEC per server ------------------------------------------------------------------------------------


@check(
    DNSSEC_SERVER_DNSKEY_BOGUS, DNSSEC_SERVER_RRSIG_EXPIRED, DNSSEC_SERVER_RRSIG_INVALID, DNSSEC_SERVER_RRSIG_MISSING,
    DNSSEC_SERVER_DENIAL_BOGUS, DNSSEC_SERVER_DO_MISHANDLED, DNSSEC_SERVER_RRSIG_UNASKED,
)  # fmt: skip  # and dnssec.DNSSEC_RECORD_UNREADABLE (declared there)
def dnssec_servers(ctx: Context) -> Iterable[Finding]:
    if not ctx.evidence.audit:
        return
    yield from _dnssec_findings(Judge(ctx.evidence))


def _dnssec_skipped(judge: Judge) -> set[str]:
    """Servers whose DNSSEC failures follow from what they do without DO: dead, lame, EDNS broken."""
    return set(_dead_servers(judge)) | judge.lame | judge.edns_broken


def _type_order(rdtype: str) -> tuple[int, str]:
    first = ("AAAA", "A", "MX")
    return (first.index(rdtype) if rdtype in first else len(first), rdtype)


def _dnssec_findings(judge: Judge) -> Iterator[Finding]:
    skip = _dnssec_skipped(judge)
    now = judge.dnssec.now
    groups: dict[tuple[Fault, str, str, str], list[tuple[Result, _dnssec.Failure | None]]] = defaultdict(list)
    for r in judge.results:
        v = r.dnssec
        if v is None or v.fault is None or not v.bogus or v.consequence or r.probe.server.address in skip:
            continue
        zone = r.probe.zone
        if v.failures and v.fault not in (Fault.DO, Fault.UNREADABLE):
            for f in v.failures:
                fault = _audit_dnssec.fault_of(f)
                # one denial fact per name (its proof is broken, whatever the type asked); one signature
                # fact per zone (a signer's lapse or a stale copy shows on every RRset alike)
                groups[(fault, zone, f.owner.lower() if fault is Fault.DENIAL else "", "")].append((r, f))
        elif v.fault is Fault.UNREADABLE:
            groups[(v.fault, zone, r.probe.qname.lower(), _qtype(r))].append((r, None))
        else:
            groups[(v.fault, zone, "", "")].append((r, None))
    for (fault, zone, owner, rdtype), items in sorted(groups.items()):
        spec = DNSSEC_SPECS[fault]
        # what the mail route asks first (AAAA, A, MX), then the rest
        items.sort(key=lambda item: (*_type_order(item[1].rdtype if item[1] else _qtype(item[0])),
                                     item[1].owner if item[1] else item[0].probe.qname.lower()))
        failures = [f for _, f in items if f is not None]
        records = list(dict.fromkeys(f"{f.owner.lower()} {f.rdtype}" for f in failures))
        if fault is Fault.DENIAL:
            rdtype = "/".join(sorted({f.rdtype for f in failures}, key=_type_order))
        elif len(records) == 1:
            owner, rdtype = records[0].split()
        bad = list(dict.fromkeys(ns_label(r.probe.server) for r, _ in items))
        asked = {(r.probe.name, r.probe.qname.lower()) for r, _ in items}
        good = list(dict.fromkeys(
            ns_label(r.probe.server) for r in judge.results
            if r.probe.zone == zone and (r.probe.name, r.probe.qname.lower()) in asked and r.dnssec is not None
            and not r.dnssec.bogus and r.status is Status.PASS and ns_label(r.probe.server) not in bad
        ))  # fmt: skip
        texts = [_audit_dnssec.describe(f, now) if f is not None else r.detail for r, f in items]
        shown = list(dict.fromkeys(texts))
        more = f"; and {len(shown) - 3} more" if len(shown) > 4 else ""
        where = (f"only at {', '.join(bad)}, valid at {', '.join(good)}: the copy of the zone on the servers "
                 "named first is at fault" if good else
                 f"at every server of {zone} asked: the zone as signed is at fault")
        first = next((f for _, f in items if f is not None), None)
        when = dnssec.when_text(first.when, now) if first is not None and first.when is not None and now else "?"
        yield spec.emit(
            f"{zone} {owner} {rdtype}".strip() if owner else zone,
            seen=[Seen(AUDIT_VIEW, str(r.probe.server), f"{r.probe.name}: {t}") for (r, _), t in zip(items, texts,
                                                                                                   strict=True)],
            reproduce=list(dict.fromkeys(dig_for(r) for r, _ in items)),
            exchanges=[i for r, _ in items for i in r.probe.exchanges],
            servers=", ".join(bad), zone=zone, qname=owner or zone, qtype=rdtype or "DNSKEY",
            records=", ".join(records) or zone,
            key_tag=str(first.key_tag) if first is not None and first.key_tag is not None else "?", when=when,
            detail="; ".join(shown[:3] if more else shown) + more + f" ({where})",
        )  # fmt: skip
    unasked = judge.dnssec.unasked()
    by_zone: dict[str, list[tuple[AuditProbe, Exchange]]] = defaultdict(list)
    for (zone, addr), pairs in sorted(unasked.items()):
        if addr not in skip:
            by_zone[zone].extend(pairs)
    for zone, pairs in sorted(by_zone.items()):
        asked_without = ", ".join(dict.fromkeys(f"{p.name}: {x.qname} {x.qtype}" for p, x in pairs[:4]))
        yield DNSSEC_SERVER_RRSIG_UNASKED.emit(
            zone,
            seen=[Seen(AUDIT_VIEW, str(p.server), f"{p.name}: RRSIG without DO") for p, _ in pairs],
            reproduce=list(dict.fromkeys(
                probeset.dig_command(probeset.BY_NAME[p.name], p.server.address, p.server.port, p.qname, x.qtype)
                + "   # -> RRSIG in the reply" for p, x in pairs[:4])),
            exchanges=[x.id for _, x in pairs],
            servers=", ".join(dict.fromkeys(ns_label(p.server) for p, _ in pairs)), zone=zone, detail=asked_without,
        )  # fmt: skip


def validating_routes(ctx: Context) -> dict[str, Route]:
    """The routes the verdicts read. An audit has no resolver view: the MTAs' resolvers are taken to
    validate, so the authoritative route answers SERVFAIL where every server's answer is bogus."""
    auth = ctx.authoritative
    if auth is None or ctx.reference is not None:
        return ctx.routes
    bogus = _audit_dnssec.bogus_questions(ctx.evidence)
    if not bogus:
        return ctx.routes
    answers = route_mod.summary_lookups(ctx.evidence.lookups, auth)
    failed = {
        q: dataclasses.replace(lk, outcome=Outcome.SERVFAIL, rcode="SERVFAIL", records=(),
                               detail="the answer does not validate (DNSSEC) at any server")
        if (q.qname.lower(), q.qtype) in bogus else lk
        for q, lk in answers.items()
    }  # fmt: skip
    return {**ctx.routes, auth: route_mod.replay(ctx.evidence.domain, failed)}


@check(AUDIT_OK)
def audit_ok(ctx: Context) -> Iterable[Finding]:
    if not ctx.evidence.audit:
        return
    judge = Judge(ctx.evidence)
    zone_of = {p.qname.lower(): p.zone for p in ctx.evidence.audit}
    zones = {p.zone for p in ctx.evidence.audit}
    bad = {r.probe.zone for r in judge.failures()}
    for f in consistency(ctx):
        subject = f.subject.split()[0]
        bad.add(subject if subject in zones else zone_of.get(subject, subject))
    bad.update(f.args["zone"] for f in dnssec_servers(ctx))
    for zone in sorted(zones - bad):
        yield AUDIT_OK.emit(zone, zone=zone)
