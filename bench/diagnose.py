"""Benchmark: probe a healthy lab domain with a delay injected on every lab DNS server.

Prints the probe's wall time next to the bound set by the longest chain of dependent queries
(root -> TLD -> zone for the MX, then the A/AAAA of the exchangers: one delay per step), so it shows
whether independent queries (views, servers of a zone, A and AAAA) really run concurrently.
Target: within 1.5 times the bound. Usage: python bench/diagnose.py [--delay S] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time

from mxdoctor import lab, probe
from mxdoctor.evidence import Evidence
from mxdoctor.lab import scenario as scenario_mod
from mxdoctor.lab.faults import Fault

TARGET_RATIO = 1.5


def delayed(name: str, delay: float) -> scenario_mod.Scenario:
    """The scenario with a ``delay`` fault on every one of its DNS servers, generated ones included."""
    sc = scenario_mod.load(name)
    servers = tuple(dataclasses.replace(s, faults=(*s.faults, Fault("delay", seconds=delay))) for s in sc.servers)
    return dataclasses.replace(sc, servers=servers)


def chain_steps(ev: Evidence) -> int:
    """Dependent steps of the route: one per zone on the MX's path, plus the exchangers' addresses."""
    owner = ev.domain + "."
    path = [z for z in ev.zones if owner == z.name or owner.endswith("." + z.name) or z.name == "."]
    return len(path) + 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="healthy")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds added by every server (0.05)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    sc = delayed(args.scenario, args.delay)
    walls: list[float] = []
    with lab.running(sc) as card:
        # the authoritative view alone: a lab resolver would cache across runs and hide its own chain
        options = probe.ProbeOptions(
            use_system=False,
            root_hints=card.root_hints,
            dns_port=card.dns_port,
            timeout=2.0,
            deadline=20.0,
        )
        for _ in range(args.runs):
            started = time.perf_counter()
            ev = asyncio.run(probe.probe_domain(card.domains[0], options))
            walls.append(time.perf_counter() - started)
    steps = chain_steps(ev)
    bound = steps * args.delay
    wall = statistics.median(walls)
    failures = [lk for lk in ev.lookups if lk.server is None and lk.outcome.is_failure]
    print(f"domain            {ev.domain} (scenario {args.scenario}, {args.delay * 1000:.0f} ms on every server)")
    print(f"views             {', '.join(v.name for v in ev.views)}")
    print(f"queries           {len(ev.exchanges)} exchanges, {len(ev.lookups)} lookups per run")
    print(f"dependent chain   {steps} steps: zones {' -> '.join(z.name for z in ev.zones)} -> MX hosts' A/AAAA")
    print(f"bound             {bound * 1000:.0f} ms")
    spread = f"min {min(walls) * 1000:.0f}  max {max(walls) * 1000:.0f}  runs {len(walls)}"
    print(f"wall (median)     {wall * 1000:.0f} ms   {spread}")
    print(f"ratio             {wall / bound:.2f} x bound (target <= {TARGET_RATIO})")
    if failures or ev.deadline_hit:
        print(f"FAILED LOOKUPS    {[(lk.view, lk.qname, lk.qtype, lk.outcome.value) for lk in failures]}")
        return 1
    return 0 if wall <= TARGET_RATIO * bound else 2


if __name__ == "__main__":
    sys.exit(main())
