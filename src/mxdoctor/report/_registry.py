"""The one registry of renderers, keyed by (kind of result, format): a renderer module registers its
pairs with ``@renderer(kind, fmt)`` and is discovered by import, so a new format is one module.
"""

from __future__ import annotations

import enum
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from mxdoctor.errors import ConfigError


class Kind(enum.StrEnum):
    """What is rendered: the result of one command family."""

    DIAGNOSIS = "diagnosis"  # diagnose, explain, demo
    AUDIT = "audit"
    SMTP = "smtp"
    QUEUE = "queue"
    CHECKS = "checks"  # the catalogue of finding codes


@dataclass(frozen=True)
class Options:
    """How much to show and how: the same few knobs for every renderer (each reads what it needs)."""

    color: bool | None = None  # None: colour on a terminal unless NO_COLOR is set
    brief: bool = False  # leave out the long tables (diagnose's resolution table)
    width: int | None = None  # terminal width; None: ask the terminal


Renderer = Callable[[Any, IO[str], Options], None]
F = TypeVar("F", bound=Renderer)

RENDERERS: dict[tuple[Kind, str], Renderer] = {}


def renderer(kind: Kind, fmt: str) -> Callable[[F], F]:
    """Register ``fn(result, out, options)`` as the ``fmt`` rendering of ``kind`` results."""

    def register(fn: F) -> F:
        if (kind, fmt) in RENDERERS:
            raise ValueError(f"two renderers for ({kind}, {fmt})")
        RENDERERS[(kind, fmt)] = fn
        return fn

    return register


_discovered = False


def discover() -> None:
    """Import every renderer module of this package once (modules starting with ``_`` are helpers)."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module("mxdoctor.report")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"mxdoctor.report.{info.name}")
    _discovered = True


def formats(kind: Kind) -> list[str]:
    """The formats ``kind`` results can be rendered in, text first."""
    discover()
    names = sorted(f for k, f in RENDERERS if k is kind)
    return sorted(names, key=lambda f: f != "text")


def render(kind: Kind, fmt: str, result: Any, out: IO[str], options: Options | None = None) -> None:
    """Render ``result`` (a ``kind`` result) as ``fmt`` on ``out``; raises ConfigError for a format
    that ``kind`` has no renderer for."""
    discover()
    fn = RENDERERS.get((kind, fmt))
    if fn is None:
        raise ConfigError(f"--format {fmt}: no such output for {kind} (available: {', '.join(formats(kind))})")
    fn(result, out, options or Options())
