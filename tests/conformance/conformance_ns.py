"""What the conformance harness runs inside a network namespace: the lab, and mxdoctor's prediction.

``serve SCENARIO ...`` is ``mxdoctor lab serve`` (the same parser and handler, built alone so that this
process imports nothing but the lab); ``predict CARD [MTA=KNOB ...] [--resolver=ADDRESS:PORT]`` runs
mxdoctor's analysis against the running lab through the lab's internal resolver (or the one named), as the
MTA in the namespace sees it, with those model knobs applied, and prints the verdicts as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def serve(argv: list[str]) -> int:
    from mxdoctor.cli import lab as lab_cli

    parser = argparse.ArgumentParser(prog="mxdoctor")
    lab_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lab", "serve", *argv])
    code: int = args.func(args)
    return code


def predict(card_path: str, knobs: list[str]) -> int:
    from mxdoctor import analysis, api, report

    card = json.loads(Path(card_path).read_text(encoding="utf-8"))
    internal = [f"{r['address']}:{r['port']}" for r in card["resolvers"] if r["name"] == "internal"]
    chosen = [k.removeprefix("--resolver=") for k in knobs if k.startswith("--resolver=")]
    knobs = [k for k in knobs if not k.startswith("--resolver=")]
    ev = api.collect(card["domains"][0], api.DiagnoseOptions(
        resolvers=tuple(chosen or internal),
        use_system=False,
        root_hints=card["root_hints"],
        trust_anchor=card.get("trust_anchor"),
        dns_port=card["dns_port"],
        timeout=1.0,
        deadline=40.0,
        smtp=True,
        smtp_port=card["smtp_port"],
    ))
    applied: dict[str, tuple[str, ...]] = {}
    for item in knobs:  # "mta=knob"; the knob itself may contain "=" (inet_protocols=ipv4)
        mta, _, knob = item.partition("=")
        applied[mta] = (*applied.get(mta, ()), knob)
    out = report.data(report.Kind.DIAGNOSIS, analysis.analyse(ev, knobs=applied))
    print(json.dumps({"verdicts": out["verdicts"], "findings": [f["code"] for f in out["findings"]]}))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    if argv[:1] == ["predict"] and len(argv) >= 2:
        return predict(argv[1], argv[2:])
    usage = ("usage: conformance_ns.py serve SCENARIO [lab serve options] | "
             "predict CARD.json [MTA=KNOB ...] [--resolver=ADDRESS:PORT]")
    print(usage, file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
