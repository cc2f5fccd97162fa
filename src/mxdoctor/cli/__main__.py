"""``python -m mxdoctor.cli``: the same entry point as the ``mxdoctor`` command."""

from mxdoctor.cli import run

run()
