"""The command line when the reader of its output goes away (`mxdoctor lab show ... | head`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

MXDOCTOR = Path(sys.executable).parent / "mxdoctor"


@pytest.mark.parametrize("argv", [["lab", "show", "healthy"], ["lab", "list"], ["checks", "--markdown"]],
                         ids=["lab-show", "lab-list", "checks"])
def test_a_closed_pipe_ends_quietly_without_a_traceback(argv: list[str]) -> None:
    if not MXDOCTOR.exists():
        pytest.skip("the mxdoctor console script is not installed beside this interpreter")
    child = subprocess.Popen([str(MXDOCTOR), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader is gone before the first line is written
    code = child.wait(timeout=60)
    err = child.stderr.read().decode()
    child.stderr.close()
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert code == 141  # 128 + SIGPIPE, as a filter killed by the signal
