"""The scan record of one domain (status, route, hosts, finding codes, a decision per MTA model), its
JSON Lines and CSV forms, and the summary of a run.

Findings and verdicts come from ``analysis.analyse`` over the domain's lookups as diagnose's
``--resolver`` view would hold them; routes of the same shape share that analysis.
"""

from __future__ import annotations

import collections
import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mxdoctor import analysis, evidence
from mxdoctor.evidence import Lookup, Outcome, ViewKind
from mxdoctor.mta.models import MODELS
from mxdoctor.route import Exchanger, Route, RouteKind
from mxdoctor.scan.engine import VIEW

ROUTE_NAMES = {RouteKind.MX: "mx", RouteKind.IMPLICIT: "implicit", RouteKind.NULL_MX: "null"}
CSV_FIELDS = ("line", "input", "domain", "status", "route", "mx_status", "hosts", "a", "aaaa", "a_status",
              "aaaa_status", "findings", *MODELS, "error")  # fmt: skip


_STATUS = {o: "ok" if o is Outcome.NOERROR else o.value.lower().replace("_", "-") for o in Outcome}


def outcome_status(lk: Lookup | None) -> str:
    """"ok", "nodata", "nxdomain", "servfail", "timeout", "refused", ... for one lookup."""
    return "unasked" if lk is None else _STATUS[lk.outcome]


def route_status(r: Route) -> str:
    """"ok" when mail can go to at least one address; else why not (permanent or temporary)."""
    if r.kind is RouteKind.NXDOMAIN:
        return "nxdomain"
    if r.kind is RouteKind.NULL_MX:
        return "null"
    if r.kind is RouteKind.FAILED:
        return outcome_status(r.mx) if r.mx is not None and r.mx.outcome.is_failure else "bad-mx"
    if r.kind is RouteKind.INCOMPLETE:
        return "incomplete"
    if any(x.addresses for x in r.exchangers):
        return "ok"
    for x in r.exchangers:
        for lk in (x.a, x.aaaa):
            if lk is not None and lk.outcome.is_failure:
                return outcome_status(lk)
    return "no-address"


def _shape(r: Route) -> tuple[Any, ...]:
    """What the checks and the models read of a route: two routes of one shape get the same codes
    and decisions (names and addresses only fill the texts in)."""
    hosts = tuple(
        (x.implicit, x.literal is not None, x.cname_target is not None,
         x.a.outcome if x.a else None, bool(x.a and x.a.records),
         x.aaaa.outcome if x.aaaa else None, bool(x.aaaa and x.aaaa.records))
        for x in r.exchangers
    )  # fmt: skip
    return (r.kind, r.mx.outcome if r.mx else None, r.null_mx_with_others, bool(r.bad_mx_records), hosts)


def evidence_of(r: Route, servers: tuple[evidence.Server, ...]) -> evidence.Evidence:
    """The evidence diagnose would hold for this route through its one ``--resolver`` view."""
    lookups: list[Lookup] = [r.mx] if r.mx is not None else []
    for x in r.exchangers:
        lookups.extend(lk for lk in (x.a, x.aaaa) if lk is not None)
    domain = r.domain.rstrip(".")
    return evidence.Evidence(
        target=domain, domain=domain, command="scan",
        views=(evidence.View(VIEW, ViewKind.RESOLVER, servers, True),), lookups=tuple(lookups),
    )  # fmt: skip


@dataclass(frozen=True)
class Judgement:
    """What a route's shape decides: its status, finding codes and a decision per MTA model."""

    status: str
    codes: tuple[str, ...]
    verdicts: dict[str, str]
    key: tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]  # the three as one summary key


@dataclass
class Judge:
    """Finding codes and per-MTA decisions of a route, from the same analysis diagnose runs."""

    servers: tuple[evidence.Server, ...]
    _cache: dict[tuple[Any, ...], Judgement] = field(default_factory=dict)

    def judge(self, r: Route) -> Judgement:
        key = _shape(r)
        hit = self._cache.get(key)
        if hit is None:
            hit = self.analyse(r)
            if len(self._cache) < 4096:
                self._cache[key] = hit
        return hit

    def analyse(self, r: Route) -> Judgement:
        d = analysis.analyse(evidence_of(r, self.servers))
        codes = tuple(sorted({f.code for f in d.findings}))
        verdicts = {v.mta: v.outcome.value for v in d.verdicts}
        status = route_status(r)
        return Judgement(status, codes, verdicts, (status, codes, tuple(verdicts.items())))


def build(line: int, text: str, r: Route, judge: Judge) -> dict[str, Any]:
    """The record of one domain (docs/scan.md)."""
    j = judge.judge(r)
    return build_judged(line, text, r, j)


def build_judged(line: int, text: str, r: Route, j: Judgement) -> dict[str, Any]:
    return {
        "line": line,
        "input": text,
        "domain": r.domain[:-1],
        "status": j.status,
        "route": ROUTE_NAMES.get(r.kind, "none"),
        "mx_status": outcome_status(r.mx),
        "hosts": [_host_record(x) for x in r.exchangers],
        "findings": list(j.codes),
        "verdicts": j.verdicts,
    }


def _host_record(x: Exchanger) -> dict[str, Any]:
    a, aaaa = x.a, x.aaaa
    cname = x.cname_target
    return {
        "name": x.host[:-1],  # an exchanger's name is absolute, never the root
        "preference": x.preference,
        "a": list(a.records) if a is not None and a.outcome is Outcome.NOERROR else [],
        "aaaa": list(aaaa.records) if aaaa is not None and aaaa.outcome is Outcome.NOERROR else [],
        "a_status": "unasked" if a is None else _STATUS[a.outcome],
        "aaaa_status": "unasked" if aaaa is None else _STATUS[aaaa.outcome],
        "cname": cname[:-1] if cname else None,
    }


def invalid(line: int, text: str, error: str) -> dict[str, Any]:
    """The record of an input line that is no mail domain."""
    return {"line": line, "input": text, "domain": None, "status": "invalid", "route": "none",
            "mx_status": None, "hosts": [], "findings": [], "verdicts": {}, "error": error}  # fmt: skip


def csv_row(rec: dict[str, Any]) -> list[str]:
    hosts = rec["hosts"]
    row = [
        str(rec["line"]), rec["input"], rec["domain"] or "", rec["status"], rec["route"], rec["mx_status"] or "",
        " ".join(f"{h['preference']}:{h['name']}" for h in hosts),
        " ".join(a for h in hosts for a in h["a"]),
        " ".join(a for h in hosts for a in h["aaaa"]),
        " ".join(f"{h['name']}={h['a_status']}" for h in hosts),
        " ".join(f"{h['name']}={h['aaaa_status']}" for h in hosts),
        " ".join(rec["findings"]),
    ]
    row.extend(rec["verdicts"].get(m, "") for m in MODELS)
    row.append(rec.get("error") or "")
    return row


def csv_line(fields: Iterable[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()


@dataclass
class Summary:
    """Counts of a run: per status, per finding code, and per MTA the domains it defers or bounces."""

    # domains counted by (status, codes, decisions): a scan has few such keys, so adding is one increment
    by_key: collections.Counter[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]] = field(
        default_factory=collections.Counter
    )

    def add(self, status: str, findings: Iterable[str], verdicts: dict[str, str]) -> None:
        self.by_key[(status, tuple(findings), tuple(verdicts.items()))] += 1

    def add_record(self, rec: dict[str, Any]) -> None:
        self.add(rec["status"], rec["findings"], rec["verdicts"])

    def add_judged(self, j: Judgement) -> None:
        self.by_key[j.key] += 1

    @property
    def domains(self) -> int:
        return sum(self.by_key.values())

    @property
    def status(self) -> collections.Counter[str]:
        out: collections.Counter[str] = collections.Counter()
        for (status, _, _), n in self.by_key.items():
            out[status] += n
        return out

    @property
    def findings(self) -> collections.Counter[str]:
        out: collections.Counter[str] = collections.Counter()
        for (_, codes, _), n in self.by_key.items():
            for code in codes:
                out[code] += n
        return out

    @property
    def decisions(self) -> dict[str, collections.Counter[str]]:
        out: dict[str, collections.Counter[str]] = {}
        for (_, _, verdicts), n in self.by_key.items():
            for mta, decision in verdicts:
                out.setdefault(mta, collections.Counter())[decision] += n
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "domains": self.domains,
            "status": dict(_ranked(self.status)),
            "findings": dict(_ranked(self.findings)),
            "verdicts": {m: dict(_ranked(c)) for m, c in self.decisions.items()},
        }

    def text(self) -> str:
        def counts(c: collections.Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in _ranked(c)) or "none"

        lines = [f"domains: {self.domains}", f"status: {counts(self.status)}", f"findings: {counts(self.findings)}"]
        decisions = self.decisions
        for what in ("defer", "bounce"):
            per = {m: c[what] for m, c in decisions.items() if c[what]}
            shown = ", ".join(f"{m} {n}" for m, n in per.items()) or "none"
            lines.append(f"would {what}: {shown}")
        return "\n".join(lines)


def _ranked(c: collections.Counter[str]) -> list[tuple[str, int]]:
    """Most common first, ties by name: the same summary whatever order the domains finished in."""
    return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))
