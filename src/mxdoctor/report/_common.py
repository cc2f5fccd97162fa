"""What the renderers share: the rich console they write through, and the JSON document of a finding
(one shape in every JSON output) with the projection that builds documents from model objects.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import IO, Any, TypeVar

from rich.console import Console

from mxdoctor.diagnosis import Finding, Remedy, Seen, Severity


def make_console(
    file: IO[str] | None = None, *, color: bool | None = None, width: int | None = None
) -> Console:
    return Console(
        file=file,
        no_color=(color is False) or None,
        highlight=False,
        width=width,
        soft_wrap=False,
        emoji=False,
    )


T = TypeVar("T")


def project(cls: type[T], obj: Any, **computed: Any) -> T:
    """A ``cls`` document from the same-named attributes of ``obj`` (plus computed members)."""
    names = [f.name for f in fields(cls) if f.name not in computed]  # type: ignore[arg-type]
    return cls(**{n: getattr(obj, n) for n in names}, **computed)


@dataclass(frozen=True)
class FindingDoc:
    """A finding as every JSON output shows it (diagnose, audit, smtp)."""

    code: str
    severity: Severity
    subject: str
    title: str
    message: str
    seen: tuple[Seen, ...]
    remediation: Remedy
    reproduce: tuple[str, ...]
    rfcs: tuple[str, ...]
    exchanges: tuple[int, ...]


def findings_doc(found: tuple[Finding, ...]) -> tuple[FindingDoc, ...]:
    return tuple(project(FindingDoc, f) for f in found)
