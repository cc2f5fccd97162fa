"""The lab: a simulated DNS-and-SMTP internet on loopback, with faults injected as scenario data.

``with mxdoctor.lab.running("aaaa-servfail") as card:`` starts a scenario's servers and yields its card.
"""

from mxdoctor.lab.runner import Card, Endpoint, running
from mxdoctor.lab.scenario import Scenario, builtin_names, load

__all__ = ["Card", "Endpoint", "Scenario", "builtin_names", "load", "running"]
