"""mxdoctor: why mail to a domain is stuck, and what to change.

The package follows one pipeline: probe (network) -> Evidence -> analyse (pure) -> Diagnosis -> render.
Its public face is ``mxdoctor.api``, re-exported here: ``mxdoctor.diagnose("example.com")``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mxdoctor.api import (
        AuditOptions,
        DiagnoseOptions,
        Diagnosis,
        Evidence,
        ExitStatus,
        LabDiagnosis,
        QueueReport,
        ScanOptions,
        SmtpOptions,
        SmtpResult,
        Thresholds,
        audit,
        collect,
        demo,
        diagnose,
        diagnose_summary,
        explain,
        lab_options,
        probe_smtp,
        queue_source,
        read_queue,
        save_evidence,
        scan,
        summarise,
    )

__all__ = [
    "AuditOptions",
    "DiagnoseOptions",
    "Diagnosis",
    "Evidence",
    "ExitStatus",
    "LabDiagnosis",
    "QueueReport",
    "ScanOptions",
    "SmtpOptions",
    "SmtpResult",
    "Thresholds",
    "__version__",
    "audit",
    "collect",
    "demo",
    "diagnose",
    "diagnose_summary",
    "explain",
    "lab_options",
    "probe_smtp",
    "queue_source",
    "read_queue",
    "save_evidence",
    "scan",
    "summarise",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use: a queue worker process or ``import mxdoctor.evidence`` need not pay for the
    # whole probe side (dnspython, cryptography, rich).
    if name in __all__:
        return getattr(importlib.import_module("mxdoctor.api"), name)
    raise AttributeError(f"module 'mxdoctor' has no attribute {name!r}")


def _public(name: str) -> property:
    def get(self: types.ModuleType) -> Any:
        return getattr(importlib.import_module("mxdoctor.api"), name)

    def keep(self: types.ModuleType, subpackage: types.ModuleType) -> None:
        self.__dict__[f"_{name}_subpackage"] = subpackage

    return property(get, keep)


class _Package(types.ModuleType):
    """The package module. ``mxdoctor.audit`` and ``mxdoctor.scan`` name both a public function and
    a subpackage; the import system sets a loaded subpackage as an attribute of its parent, which
    would hide the function, so the attribute stays the function and the subpackage is reached by
    ``from mxdoctor.audit import ...`` (through sys.modules) as everywhere in the code."""

    audit = _public("audit")
    scan = _public("scan")


sys.modules[__name__].__class__ = _Package
