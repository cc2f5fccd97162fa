"""Every renderer of every result (diagnosis, audit, smtp, queue, checks) in one registry keyed by
(kind, format): ``report.render(Kind.DIAGNOSIS, "json", d, out)``. Renderers never compute findings.

A new output format is one module here that registers its (kind, format) pairs; see ``_registry``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mxdoctor.errors import MxdoctorError
from mxdoctor.report._common import make_console
from mxdoctor.report._json import data, encode
from mxdoctor.report._registry import Kind, Options, discover, formats, render

__all__ = ["Kind", "Options", "data", "discover", "emit", "encode", "formats", "make_console", "render"]


def emit(kind: Kind, fmt: str, result: Any, *, output: str | None = None, options: Options | None = None) -> None:
    """Render to standard output, or to the file ``output`` (written whole, then moved into place, so
    a reader never sees half a report). A closed pipe (``| head``) raises BrokenPipeError, which the
    command line's entry point turns into a quiet exit 141 for every command alike."""
    if output is None or output == "-":
        render(kind, fmt, result, sys.stdout, options)
        sys.stdout.flush()
        return
    path = Path(output)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            render(kind, fmt, result, out, options)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MxdoctorError(f"--output {output}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
