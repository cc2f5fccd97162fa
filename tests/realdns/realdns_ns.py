"""What the realdns harness runs inside its namespace: the MTA's queries through one resolver, as a stub does.

``probe RESOLVER DOMAIN`` asks MX of DOMAIN, then AAAA and A of the first exchanger, one after the other,
as glibc's stub resolver does with its defaults (recursion desired, no EDNS, 5 s per try, 2 tries, TCP
after truncation), and prints each answer (rcode or TIMEOUT, seconds) as JSON. ``--edns`` adds an OPT
record (glibc's ``options edns0``; no DO), so that a resolver can say why it failed (RFC 8914 EDE).
"""

from __future__ import annotations

import json
import sys
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

STUB_TIMEOUT = 5.0  # glibc's defaults: options timeout:5 attempts:2
STUB_ATTEMPTS = 2


def ask(
    resolver: str, qname: str, qtype: str, edns: bool = False
) -> tuple[dict[str, object], dns.message.Message | None]:
    # RD set, no OPT record: glibc's default; with edns0, an OPT record of 1232 bytes (no DO)
    query = dns.message.make_query(qname, qtype, use_edns=0 if edns else None, payload=1232)
    started = time.monotonic()
    reply = None
    for _ in range(STUB_ATTEMPTS):
        try:
            reply = dns.query.udp(query, resolver, timeout=STUB_TIMEOUT)
            if reply.flags & dns.flags.TC:
                reply = dns.query.tcp(query, resolver, timeout=STUB_TIMEOUT)
            break
        except (TimeoutError, dns.exception.Timeout):
            continue
        except OSError as exc:
            return {"qname": qname, "qtype": qtype, "rcode": f"ERROR {exc}",
                    "seconds": round(time.monotonic() - started, 2)}, None
    seconds = round(time.monotonic() - started, 2)
    if reply is None:
        return {"qname": qname, "qtype": qtype, "rcode": "TIMEOUT", "seconds": seconds}, None
    rcode = dns.rcode.to_text(reply.rcode())
    want = dns.rdatatype.from_text(qtype)
    if rcode == "NOERROR" and not any(r.rdtype == want for r in reply.answer):
        rcode = "NODATA"
    ede = [f"{o.code}" + (f" {o.text}" if o.text else "") for o in reply.options
           if isinstance(o, dns.edns.EDEOption)]
    return {"qname": qname, "qtype": qtype, "rcode": rcode, "seconds": seconds, "ede": ede}, reply


def probe(resolver: str, domain: str, edns: bool = False) -> list[dict[str, object]]:
    out = []
    answer, reply = ask(resolver, domain, "MX", edns)
    out.append(answer)
    if reply is None or answer["rcode"] != "NOERROR":
        return out
    mxs = sorted(
        (r.preference, r.exchange.to_text()) for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.MX for r in rrset
    )
    if not mxs or mxs[0][1] == ".":
        return out
    for qtype in ("AAAA", "A"):
        out.append(ask(resolver, mxs[0][1], qtype, edns)[0])
    return out


def main(argv: list[str]) -> int:
    edns = "--edns" in argv
    argv = [a for a in argv if a != "--edns"]
    if len(argv) == 3 and argv[0] == "probe":
        print(json.dumps(probe(argv[1], argv[2], edns)))
        return 0
    print("usage: realdns_ns.py probe [--edns] RESOLVER DOMAIN", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
