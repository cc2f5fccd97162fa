"""The library's plain entry points: diagnose a domain, explain saved evidence, summarise for alerts.

Sync at the edge: each function runs the async probe to completion and returns plain values.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mxdoctor import analysis, evidence, probe, route
from mxdoctor.analysis import Diagnosis
from mxdoctor.errors import EvidenceError
from mxdoctor.evidence import ViewKind
from mxdoctor.mta.verdict import Decision


def collect(
    target: str,
    *,
    resolvers: Sequence[str] = (),
    externals: Sequence[str] = (),
    use_system: bool | None = None,
    authoritative: bool = True,
    root_hints: str | None = None,
    dns_port: int = 53,
    timeout: float = 2.0,
    deadline: float = 30.0,
    smtp: bool = False,
    smtp_port: int = 25,
    smtp_cafile: str | None = None,
    started: float | None = None,
) -> evidence.Evidence:
    """Probe ``target`` (a domain or an address) through every view; raises InvalidTarget.

    ``deadline`` bounds the whole call, SMTP probes included, with a margin for the analysis, from
    ``started`` (a ``time.monotonic()`` value; the command's start in the CLI) or now."""
    started = time.monotonic() if started is None else started
    domain = route.normalise_target(target)
    options = probe.ProbeOptions(
        resolvers=tuple(resolvers),
        externals=tuple(externals),
        use_system=use_system,
        authoritative=authoritative,
        root_hints=root_hints,
        dns_port=dns_port,
        timeout=timeout,
        deadline=deadline,
    )
    options.check()
    ev = probe.collect(target if "@" not in target else domain, options, started=started)
    if smtp:
        left = probe.probe_time(deadline) - (time.monotonic() - started)
        ev = _with_smtp(ev, smtp_port=smtp_port, timeout=timeout, cafile=smtp_cafile, left=left)
    return ev


def _with_smtp(
    ev: evidence.Evidence, *, smtp_port: int, timeout: float, cafile: str | None, left: float
) -> evidence.Evidence:
    """Probe port 25 of every exchanger address the MTA's view found (the reference view)."""
    import asyncio

    from mxdoctor.smtp import probe as smtp_probe

    kinds = (ViewKind.RESOLVER, ViewKind.SYSTEM, ViewKind.AUTHORITATIVE)
    view = next((v.name for kind in kinds for v in ev.views if v.kind is kind), None)
    if view is None:
        return ev
    # One SMTP stage may take a few DNS time-outs, never the 60 s default: the diagnosis has a deadline.
    options = smtp_probe.Options(
        helo_name=smtp_probe.default_helo_name(),
        timeouts=smtp_probe.Timeouts.scaled(max(timeout * 3, 3.0)),
        cafile=cafile,
    )

    async def bounded() -> evidence.Evidence:
        try:
            return await asyncio.wait_for(
                smtp_probe.probe_evidence(ev, view=view, port=smtp_port, options=options), max(0.0, left)
            )
        except TimeoutError:
            cut = evidence.LimitReached("deadline", "the SMTP probes were unfinished")
            return evidence.replace(ev, deadline_hit=True, limits_reached=(*ev.limits_reached, cut))

    return asyncio.run(bounded())


def lab_options(card: Any) -> dict[str, Any]:
    """``collect`` options that diagnose through a running lab (``mxdoctor.lab.running`` card): its
    internal resolver as the MTA's, its external one to compare, its root, its ports and its CA."""
    from mxdoctor.lab import certs

    return {
        "resolvers": [r.hostport for r in card.resolvers if r.name == "internal"],
        "externals": [r.hostport for r in card.resolvers if r.name == "external"],
        "use_system": False,
        "root_hints": card.root_hints,
        "dns_port": card.dns_port,
        "smtp_port": card.smtp_port,
        "smtp_cafile": str(certs.lab_ca(Path(card.workdir) / "certs")[0]),
    }


def diagnose(
    target: str,
    *,
    mtas: Sequence[str] | None = None,
    knobs: dict[str, tuple[str, ...]] | None = None,
    **probe_options: Any,
) -> Diagnosis:
    """Probe and analyse: the whole of ``mxdoctor diagnose`` without the rendering."""
    return analysis.analyse(collect(target, **probe_options), mtas=mtas, knobs=knobs)


def explain(path: str | Path, **kwargs: Any) -> Diagnosis:
    """Re-analyse saved evidence offline."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvidenceError(f"{p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise EvidenceError(f"{p}: not a text file") from None
    return analysis.analyse(evidence.loads(text, source=str(p)), **kwargs)


def diagnose_summary(domain: str, **probe_options: Any) -> dict[str, Any]:
    """A short summary for alerts: root cause, who defers, and the fix for each side."""
    d = diagnose(domain, **probe_options)
    causes = d.root_causes() or [f for f in d.findings if f.severity.rank >= 2]
    cause = causes[0] if causes else None
    return {
        "domain": d.domain,
        "exit_code": d.exit_code,
        "root_cause": cause.code if cause else None,
        "message": cause.message if cause else "no DNS fault found",
        "fix_receiver": cause.remediation.receiver if cause else "",
        "fix_sender": cause.remediation.sender if cause else "",
        "verdicts": {v.mta: v.outcome.value for v in d.verdicts},
        "deferring": [v.mta for v in d.verdicts if v.outcome in (Decision.DEFER, Decision.BOUNCE)],
        "texts": {v.mta: v.text for v in d.verdicts},
    }
