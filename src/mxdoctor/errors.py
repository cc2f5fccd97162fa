"""The one error hierarchy of mxdoctor, for input a person must correct.

    MxdoctorError                 (CLI: one line, exit 3)
     +-- InvalidTarget            a domain, address or host that cannot be used
     +-- ScenarioError            a lab scenario file that cannot be loaded
     +-- LabError                 a lab that cannot start (port taken, server not answering)
     +-- EvidenceError            an evidence file that cannot be read
     +-- QueueError               a queue source that gives nothing readable
     +-- ConfigError              a configuration file or option that is wrong

Network faults are never exceptions: they are recorded as evidence.
"""

from __future__ import annotations


class MxdoctorError(Exception):
    """Base of every error meant for a person; ``str(err)`` is one line."""


class InvalidTarget(MxdoctorError):
    """The target (domain, address, host name) is not usable."""


class ScenarioError(MxdoctorError):
    """A lab scenario is malformed: the message names the file, the key and the problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + problem)


class LabError(MxdoctorError):
    """A lab cannot start: a port is taken, or a server does not answer in time."""


class EvidenceError(MxdoctorError):
    """An evidence file cannot be read (not JSON, wrong schema, wrong major version)."""


class QueueError(MxdoctorError):
    """A queue source could not be read at all."""


class ConfigError(MxdoctorError):
    """A configuration value is wrong."""
