"""The one JSON encoder of every output: a result's document (typed data, the schema of docs/*.md)
goes through ``_codec.dump``; ``@document(kind)`` registers a builder and the ``json`` renderer at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import IO, Any, TypeVar

from mxdoctor import _codec
from mxdoctor.report._registry import Kind, Options, renderer

Builder = Callable[[Any], Any]
B = TypeVar("B", bound=Builder)

DOCUMENTS: dict[Kind, Builder] = {}


def encode(doc: Any) -> str:
    """The JSON text of a document: dataclasses as objects, enums as values, tuples as lists."""
    # allow_nan=False: every number is bounded where it is read, and JSON has no NaN or Infinity.
    return json.dumps(_codec.dump(doc), indent=2, ensure_ascii=False, allow_nan=False)


def document(kind: Kind) -> Callable[[B], B]:
    """Register ``build(result) -> document`` for ``kind``; its ``json`` rendering follows from it."""

    def register(build: B) -> B:
        DOCUMENTS[kind] = build

        @renderer(kind, "json")
        def write(result: Any, out: IO[str], options: Options) -> None:
            out.write(encode(build(result)) + "\n")

        return build

    return register


def data(kind: Kind, result: Any) -> Any:
    """The plain data (dicts, lists, strings, numbers) of ``kind``'s JSON form of ``result``."""
    from mxdoctor.report._registry import discover

    discover()
    return _codec.dump(DOCUMENTS[kind](result))
