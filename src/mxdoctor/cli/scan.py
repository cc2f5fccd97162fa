"""The scan command: arguments in, ``scan.run.scan`` called, the summary on standard error."""

from __future__ import annotations

import argparse
import sys

from mxdoctor.scan import run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "scan",
        help="resolve a list of mail domains as MTAs do, one record per domain (JSON Lines or CSV)",
        description="Resolve every domain (or address) of FILE, one per line ('-': standard input; blank "
        "lines and # comments skipped), as diagnose does through --resolver: MX, implicit MX, null MX, "
        "CNAMEs, A and AAAA of every exchanger; write one record per line in input order with its status, "
        "route, hosts, finding codes and a decision per MTA model, and a summary on standard error. "
        "Exit: 0 done, 3 input or option error.",
    )
    p.add_argument("file", help="the list of domains, one per line ('-' for standard input)")
    p.add_argument("--resolver", action="append", default=[], metavar="ADDR[:PORT]",
                   help="the resolver to scan through (repeatable: the load is spread over them); "
                   f"without it the system's, at most {run.SYSTEM_MAX_QPS:g} queries/s")
    p.add_argument("--output", "-o", metavar="OUT", help="write the records to OUT (default standard output)")
    p.add_argument("--format", choices=run.FORMATS, default="jsonl", help="record format (default jsonl)")
    p.add_argument("--concurrency", type=int, default=run.DEFAULT_CONCURRENCY, metavar="N",
                   help=f"queries in flight at each resolver (default {run.DEFAULT_CONCURRENCY})")
    p.add_argument("--qps", type=float, default=None, metavar="N",
                   help=f"queries per second in all (default {run.DEFAULT_QPS:g} with --resolver; 0: no limit)")
    p.add_argument("--timeout", type=float, default=2.0, metavar="S",
                   help="first attempt's timeout; a retry waits twice as long (default 2)")
    p.add_argument("--retries", type=int, default=1, metavar="N",
                   help="attempts after a timeout (default 1, as diagnose)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run: skip what OUT holds")
    p.add_argument("--dns-port", type=int, default=53, metavar="N", help="port of resolvers given without one")
    p.add_argument("--dask", metavar="tcp://HOST:8786",
                   help="scan in chunks on this dask.distributed cluster (the qps budget is shared by its workers)")
    p.add_argument("--chunk", type=int, default=2000, metavar="N",
                   help="input lines per task of a worker process or of Dask (default 2000)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes scanning on this machine, each with its share of --qps and --concurrency "
                   f"(default: one per usable CPU, at most {run.MAX_WORKERS}, one per {run.QPS_PER_WORKER:g} "
                   "queries/s of --qps; 1: this process alone)")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show progress on standard error even when it is not a terminal")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress")
    p.set_defaults(func=run_scan)


def run_scan(args: argparse.Namespace) -> int:
    options = run.ScanOptions(
        resolvers=tuple(args.resolver),
        output=args.output,
        format=args.format,
        concurrency=args.concurrency,
        qps=args.qps,
        timeout=args.timeout,
        retries=args.retries,
        resume=args.resume,
        dns_port=args.dns_port,
        progress=args.progress,
        dask=args.dask,
        chunk=args.chunk,
        workers=args.workers,
    )
    summary = run.scan(args.file, options)
    print(summary.text(), file=sys.stderr)
    return 0
