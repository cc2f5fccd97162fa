"""Pure judgement of audit probes: pass, fail or no answer for each (probe, server), with the RCODE,
the reason in words and the finding code a failure maps to. The checks and the matrix both read it.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from mxdoctor.audit import probes
from mxdoctor.evidence import AuditProbe, Evidence, Exchange, Outcome, Transport


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
    code: str = ""  # the finding code a failure maps to ("" when it passes)

    @property
    def ok(self) -> bool:
        return self.status is Status.PASS


_SILENT = (Outcome.TIMEOUT, Outcome.NETWORK_ERROR)
_DATA = (Outcome.NOERROR, Outcome.NODATA)
_AAAA_CODES = {
    Outcome.SERVFAIL: "AAAA_SERVFAIL",
    Outcome.TIMEOUT: "AAAA_TIMEOUT",
    Outcome.NETWORK_ERROR: "AAAA_TIMEOUT",
    Outcome.NXDOMAIN: "AAAA_NXDOMAIN",
    Outcome.BROKEN: "AAAA_BROKEN_RESPONSE",
    Outcome.MALFORMED: "AAAA_BROKEN_RESPONSE",
}
# the code a failed probe maps to, unless a rule below says otherwise
_CODES = {
    "a": "QUERY_FAILED",
    "aaaa": "AAAA_UNEXPECTED_RCODE",
    "mx": "QUERY_FAILED",
    "txt": "QUERY_FAILED",
    "unknown-type": "UNKNOWN_TYPE_MISHANDLED",
    "case": "QNAME_CASE_MISHANDLED",
    "soa": "QUERY_FAILED",
    "ns": "QUERY_FAILED",
    "nxdomain": "NXDOMAIN_MISHANDLED",
    "ent": "NXDOMAIN_FOR_EMPTY_NONTERMINAL",
    "plain": "QUERY_FAILED",
    "edns": "EDNS_INTOLERANT",
    "edns1": "EDNS_VERSION_IGNORED",
    "ednsopt": "EDNS_OPTION_MISHANDLED",
    "ednsflags": "EDNS_FLAG_MISHANDLED",
    "do512": "NO_TRUNCATION",
    "tcp": "TCP_UNSUPPORTED",
    "ednstcp": "TCP_UNSUPPORTED",
    "opcode": "OPCODE_MISHANDLED",
    "zflag": "ZFLAG_MISHANDLED",
}


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
        self.results = [self._judge(p) for p in ev.audit]
        self.lame = self._lame_servers()
        self.edns_broken = {
            r.probe.server.address for r in self.results if r.probe.name == "edns" and not r.ok
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
            if r.probe.name not in probes.AUTHORITATIVE_PROBES or r.exchange is None:
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
        code = _CODES.get(p.name, "QUERY_FAILED")
        if x is None:
            return Result(p, None, Status.NO_ANSWER, rcode, "not sent", code)
        if p.name == "aaaa":
            code = _AAAA_CODES.get(x.outcome, code)
        if x.outcome in _SILENT:
            return Result(p, x, Status.NO_ANSWER, x.outcome.value, x.error or "no reply", code)
        problem = self._problem(p, x)
        if problem is None:
            return Result(p, x, Status.PASS, rcode)
        detail, override = problem
        return Result(p, x, Status.FAIL, rcode, detail, override or code)

    def _problem(self, p: AuditProbe, x: Exchange) -> tuple[str, str] | None:
        """(what is wrong, finding code or "" for the probe's own) or None when the reply is right."""
        name = p.name
        if x.outcome in (Outcome.MALFORMED, Outcome.BROKEN):
            return (x.error or "unreadable reply", "")
        if name == "case":
            plain = self.sibling(p, "a", p.qname.lower())
            if plain is not None and (plain.outcome, _rdata(plain)) == (x.outcome, _rdata(x)):
                return self._case(p, x)  # the same answer as the lower-case name: only the echo counts
        expects_data = name in ("a", "aaaa", "mx", "txt", "unknown-type", "case", "ent")
        if expects_data:
            if x.outcome is Outcome.NXDOMAIN:
                if name == "ent":
                    return ("NXDOMAIN for a name that has names below it", "")
                exists = self._exists_at(p)
                if exists:
                    return (f"NXDOMAIN for a name that has {exists}", "")
            elif x.outcome not in _DATA:
                return (f"{rcode_of(x)} instead of NOERROR", "QUERY_FAILED" if name == "ent" else "")
        if name in probes.AUTHORITATIVE_PROBES and x.outcome.is_answer and "AA" not in x.flags:
            return (f"{x.qtype} {x.outcome.value} answer without the AA bit", "NOT_AUTHORITATIVE")
        if name == "case":
            return self._case(p, x)
        if name in ("soa", "ns", "plain", "edns", "ednsopt", "ednsflags", "tcp", "ednstcp", "zflag"):
            if x.outcome is not Outcome.NOERROR:
                return (f"{rcode_of(x)} instead of NOERROR with the {x.qtype}", "")
        if name == "nxdomain":
            if x.outcome in _DATA:
                return None  # a wildcard may cover the name: nothing to say
            if x.outcome is not Outcome.NXDOMAIN:
                return (f"{rcode_of(x)} instead of NXDOMAIN", "")
            if not _has_soa(x):
                return ("NXDOMAIN without the SOA in the authority section", "")
        if name == "plain" and x.reply_edns is not None:
            return ("an OPT record in the reply to a query without EDNS", "")
        if name in ("edns", "ednstcp", "ednsopt", "ednsflags") and x.reply_edns is None:
            return ("no OPT record in the reply: EDNS ignored", "")
        if name == "edns1":
            if x.rcode == "BADVERS" and x.reply_edns == 0:
                return None
            if x.rcode == "BADVERS":
                return (f"BADVERS with an OPT record of version {x.reply_edns}", "")
            return (f"{rcode_of(x)} instead of BADVERS: the version is not negotiated", "")
        if name == "ednsopt" and any(f.startswith("OPTION=") for f in x.flags):
            return ("the unknown option is echoed in the reply", "")
        if name == "ednsflags" and any(f.startswith("EDNSFLAGS=") for f in x.flags):
            return ("the undefined EDNS flag is echoed in the reply", "")
        if name == "zflag" and "Z" in x.flags:
            return ("the Z bit is set in the reply", "")
        if name == "opcode" and x.outcome is not Outcome.NOTIMP:
            return (f"{rcode_of(x)} instead of NOTIMP", "")
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

    def _case(self, p: AuditProbe, x: Exchange) -> tuple[str, str] | None:
        if x.reply_qname is not None and x.reply_qname != p.qname:
            return (f"question echoed as {x.reply_qname}, asked as {p.qname}", "")
        plain = self.sibling(p, "a", p.qname.lower())
        if plain is not None and plain.outcome.is_answer:
            if (plain.outcome, _rdata(plain)) != (x.outcome, _rdata(x)):
                return (f"{x.outcome.value} where the lower-case name gets {plain.outcome.value}", "")
        return None

    def _do512(self, p: AuditProbe, x: Exchange) -> tuple[str, str] | None:
        if x.size is not None and x.size > probes.SMALL_BUFFER:
            return (f"a reply of {x.size} bytes to a {probes.SMALL_BUFFER}-byte buffer, without TC", "")
        if x.outcome not in _DATA:
            return (f"{rcode_of(x)} instead of an answer or TC", "")
        truncated = "TC" in x.flags
        full = self.sibling(p, x.qtype.lower(), p.qname) if x.qtype in ("MX", "TXT", "NS", "SOA") else None
        if full is not None and not truncated and full.answer and len(x.answer) < len(full.answer):
            return (f"{len(x.answer)} of {len(full.answer)} records without TC", "")
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


def _rdata(x: Exchange) -> list[str]:
    return sorted(" ".join(rr.split()[4:]).lower() for rr in x.answer)
