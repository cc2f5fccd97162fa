#!/usr/bin/env python3
"""Hostile DNS server (UDP+TCP) for reliability tests. Loopback only. Stops by itself after --life s.

usage: hostile_dns.py MODE ADDR PORT [--life S] [--peer ADDR]  |  hostile_dns.py --modes
Every server plays every role (root, TLD, authoritative, resolver): glue always points back to ADDR
(or to the peer of a two-server loop), so one port (mxdoctor --dns-port) serves the whole tree.
"""
from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import sys

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

# the hostile modes, then the well-behaved ones (``ok`` answers everything, ``root`` refers to --peer)
MODES = (
    "random", "random-keepid", "ptrloop", "ptrloop-q", "big64k", "big64k-garbage", "wrongid",
    "wrongid-flood", "late", "silent", "refchain", "glueless-fanout", "refloop", "gluelessloop", "cname50",
    "cnameloop", "cname50-full", "mx500", "ns200", "mxodd", "mxnull-only", "tcreset", "trickle",
)
if sys.argv[1:2] == ["--modes"]:
    print("\n".join(MODES))
    sys.exit(0)
MODE, ADDR, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
LIFE = float(sys.argv[sys.argv.index("--life") + 1]) if "--life" in sys.argv else 120.0
PEER = sys.argv[sys.argv.index("--peer") + 1] if "--peer" in sys.argv else ADDR
assert ADDR.startswith("127.") and 6300 <= PORT <= 6499
rng = random.Random(int(os.environ.get("SEED", "1")))
COUNT = {"udp": 0, "tcp": 0}
BASE = dns.name.from_text("hostile.test.")


def rr(name, ttl, rdtype, *texts):
    return dns.rrset.from_text(name, ttl, "IN", rdtype, *texts)


def reply_for(q: dns.message.Message) -> dns.message.Message:
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    return r


def qinfo(q):
    qq = q.question[0]
    return qq.name, qq.rdtype


# ------------------------------------------------------------------------------------------------
# mode handlers: each returns bytes for UDP (or None: no reply) and bytes for TCP (or a special)

def ptrloop_bytes(q: dns.message.Message) -> bytes:
    # header: same id, QR|AA, 1 question, 1 answer; question copied; answer owner = pointer to itself
    qwire = q.to_wire()
    qsec = qwire[12:]  # question only (no OPT: ar=0 below)
    # cut off any OPT additional: recompute question length
    name_end = 12
    while qwire[name_end] != 0:
        name_end += 1 + qwire[name_end]
    qsec = qwire[12:name_end + 5]
    header = struct.pack("!HHHHHH", q.id, 0x8400, 1, 1, 0, 0)
    off = 12 + len(qsec)
    loop_ptr = struct.pack("!H", 0xC000 | off)  # points at itself
    ans = loop_ptr + struct.pack("!HHIH", 15, 1, 300, 4) + b"\x00\x0a" + struct.pack("!H", 0xC000 | off)
    return header + qsec + ans


def ptrloop_q_bytes(q: dns.message.Message) -> bytes:
    # the question name itself is a pointer loop (two pointers to each other)
    header = struct.pack("!HHHHHH", q.id, 0x8400, 1, 0, 0, 0)
    return header + struct.pack("!H", 0xC000 | 14) + struct.pack("!H", 0xC000 | 12) + struct.pack("!HH", 15, 1)


BIG_CACHE: dict = {}


def big_reply(q: dns.message.Message, target_size: int = 65000) -> bytes:
    name, rdtype = qinfo(q)
    key = (name, rdtype)
    if key not in BIG_CACHE:
        def build(n):
            r = reply_for(q)
            if rdtype == dns.rdatatype.MX:
                texts = [f"{i % 65535} {'x' * 60}.{'y' * 60}.m{i}.{name.to_text()}" for i in range(n)]
                r.answer = [rr(name, 300, "MX", *texts)]
            elif rdtype == dns.rdatatype.A:
                r.answer = [rr(name, 300, "A", *[f"127.0.{(i // 250) % 250}.{i % 250 + 1}" for i in range(n)])]
            else:
                r.answer = [rr(name, 300, "TXT", *[f'"{i} ' + "z" * 200 + '"' for i in range(n)])]
            return r
        per = (len(build(20).to_wire(max_size=70000)) - len(build(10).to_wire(max_size=70000))) / 10
        n = max(1, int((target_size - 300) / per))
        if rdtype == dns.rdatatype.A:
            n = min(n, 60000)
        wire = build(n).to_wire(max_size=200000)
        while len(wire) > 65535:
            n = int(n * 0.95)
            wire = build(n).to_wire(max_size=200000)
        BIG_CACHE[key] = (wire, n)
    wire, n = BIG_CACHE[key]
    out = bytearray(wire)
    out[0:2] = q.id.to_bytes(2, "big")
    return bytes(out)


def tc_reply(q) -> bytes:
    r = reply_for(q)
    r.flags |= dns.flags.TC
    return r.to_wire()


def referral(q, zone: str, ns_names, glue: dict[str, str] | None) -> dns.message.Message:
    r = dns.message.make_response(q)
    r.flags &= ~dns.flags.AA
    r.authority = [rr(zone, 300, "NS", *ns_names)]
    if glue:
        for n, a in glue.items():
            r.additional.append(rr(n, 300, "A", a))
    return r


def auth_answer(q, rdtype_text: str, *texts) -> dns.message.Message:
    name, _ = qinfo(q)
    r = reply_for(q)
    r.answer = [rr(name, 300, rdtype_text, *texts)]
    return r


def nodata(q) -> dns.message.Message:
    r = reply_for(q)
    r.authority = [rr(zone_apex(qinfo(q)[0]), 300, "SOA", "ns.hostile.test. h.hostile.test. 1 3600 600 86400 300")]
    return r


def zone_apex(name):
    # the "owner zone" used by simple authoritative modes: the last two labels
    labels = name.labels
    return dns.name.Name(labels[-3:]) if len(labels) >= 3 else name


COUNTER = {"zone": 0}


def generic_auth(q, mx_texts=None, a_addr="127.0.0.99"):
    """A server authoritative for everything: MX -> mx_texts, A -> a_addr, AAAA -> nodata, NS -> self."""
    name, rdtype = qinfo(q)
    if rdtype == dns.rdatatype.MX:
        return auth_answer(q, "MX", *(mx_texts or [f"10 mx.{name.to_text()}"]))
    if rdtype == dns.rdatatype.A:
        return auth_answer(q, "A", a_addr)
    if rdtype == dns.rdatatype.NS:
        return auth_answer(q, "NS", "ns.hostile.test.")
    return nodata(q)


def handle(q: dns.message.Message, transport: str):
    """Return ('bytes', b) | ('none',) | ('sleep', s, b) | ('tcp_reset',) | ('trickle', b)"""
    name, rdtype = qinfo(q)
    qn = name.to_text().lower()
    m = MODE
    if m == "random":
        n = rng.randint(0, 600)
        return ("bytes", os.urandom(n))
    if m == "random-keepid":  # random after a valid ID (the ID matches: parser must cope)
        return ("bytes", struct.pack("!H", q.id) + os.urandom(rng.randint(0, 600)))
    if m == "ptrloop":
        return ("bytes", ptrloop_bytes(q))
    if m == "ptrloop-q":
        return ("bytes", ptrloop_q_bytes(q))
    if m == "big64k":
        if transport == "udp":
            return ("bytes", tc_reply(q))
        return ("bytes", big_reply(q))
    if m == "big64k-garbage":
        if transport == "udp":
            return ("bytes", tc_reply(q))
        return ("bytes", struct.pack("!H", q.id) + os.urandom(65533))
    if m == "wrongid":
        r = generic_auth(q)
        r.id = (q.id + 1) % 65536
        return ("bytes", r.to_wire())
    if m == "wrongid-flood":  # 200 wrong-ID replies per query, then nothing
        r = generic_auth(q)
        out = []
        for i in range(200):
            r.id = (q.id + 1 + i) % 65536
            out.append(r.to_wire())
        return ("multi", out)
    if m == "late":
        return ("sleep", float(os.environ.get("LATE", "3.0")), generic_auth(q).to_wire())
    if m == "silent":
        return ("none",)
    if m == "refchain":
        # each query is referred one label deeper below the deepest zone it "knows" the query is in
        # the referral owner = the qname's suffix one label longer than the zone the resolver asked.
        # We cannot see which zone was asked, so refer to a random depth; mxdoctor requires the
        # child to be below the asked zone, so we refer to depth (asked+1) using a counter per qname.
        key = (qn, rdtype, transport)
        depth = REFDEPTH.get(key, 0) + 1
        REFDEPTH[key] = depth
        labels = name.labels  # includes root ''
        if depth >= len(labels):
            return ("bytes", generic_auth(q).to_wire())
        child = dns.name.Name(labels[-(depth + 1):])
        ns = f"ns{depth}.{child.to_text()}"
        return ("bytes", referral(q, child.to_text(), [ns], {ns: ADDR}).to_wire())
    if m == "glueless-fanout":
        # every query for a name under hostile.test (or the target) gets a referral of that name's
        # TLD-ish zone to K glueless name servers in brand-new zones; A queries for nsX names get the same
        k = int(os.environ.get("FANOUT", "13"))
        COUNTER["zone"] += 1
        z = COUNTER["zone"]
        labels = name.labels
        child = dns.name.Name(labels[-2:]) if len(labels) >= 2 else name
        if child == dns.name.root:
            return ("bytes", generic_auth(q).to_wire())
        nss = [f"ns{i}.z{z}x{i}.{child.to_text()}" if False else f"ns{i}.z{z}x{i}.net{z}." for i in range(k)]
        return ("bytes", referral(q, child.to_text(), nss, None).to_wire())
    if m == "refloop":
        # server A and B refer the TLD to each other (lateral referral loop) and also upward
        lab = name.labels
        tld = dns.name.Name(lab[-2:]) if len(lab) >= 2 else name
        peer_ns = f"ns.peer-of-{ADDR.replace('.', '-')}.{tld.to_text()}"
        return ("bytes", referral(q, tld.to_text(), [peer_ns], {peer_ns: PEER}).to_wire())
    if m == "gluelessloop":
        # example zones a.test and b.test: a.test's NS is ns.b.test, b.test's NS is ns.a.test, no glue
        lab = name.labels
        if len(lab) <= 2:  # root or tld queries: refer the tld to ourselves with glue
            return ("bytes", generic_auth(q).to_wire())
        tld = dns.name.Name(lab[-2:])
        sld = dns.name.Name(lab[-3:])
        if not REFSEEN.get(("tld", qn, rdtype)):
            REFSEEN[("tld", qn, rdtype)] = 1
            ns = f"ns.{tld.to_text()}"
            return ("bytes", referral(q, tld.to_text(), [ns], {ns: ADDR}).to_wire())
        other = "b" if sld.labels[0] != b"b" else "a"
        return ("bytes", referral(q, sld.to_text(), [f"ns.{other}.{tld.to_text()}"], None).to_wire())
    if m in ("cname50", "cnameloop", "cname50-full"):
        n_chain = 50
        lab = name.labels
        first = lab[0].decode()
        base = name if not first.startswith("c") or not first[1:].isdigit() else dns.name.Name(lab[1:])
        if m == "cnameloop":
            if first == "loop":
                return ("bytes", auth_answer(q, "CNAME", dns.name.Name(lab[1:]).to_text()).to_wire())
            if rdtype == dns.rdatatype.CNAME:
                return ("bytes", nodata(q).to_wire())
            return ("bytes", auth_answer(q, "CNAME", "loop." + name.to_text()).to_wire())
        idx = int(first[1:]) if base != name else 0
        if m == "cname50-full" and q.flags & dns.flags.RD:
            # resolver style: whole chain in one answer
            r = reply_for(q)
            cur = base
            r.answer = []
            for i in range(1, n_chain + 1):
                nxt = dns.name.from_text(f"c{i}", base)
                r.answer.append(rr(cur if i == 1 else dns.name.from_text(f"c{i-1}", base), 300, "CNAME", nxt.to_text()))
            last = dns.name.from_text(f"c{n_chain}", base)
            if rdtype == dns.rdatatype.MX:
                r.answer.append(rr(last, 300, "MX", f"10 mx.{base.to_text()}"))
            elif rdtype == dns.rdatatype.A:
                r.answer.append(rr(last, 300, "A", "127.0.0.99"))
            return ("bytes", r.to_wire(max_size=65535))
        if idx < n_chain and rdtype != dns.rdatatype.CNAME:
            return ("bytes", auth_answer(q, "CNAME", f"c{idx + 1}.{base.to_text()}").to_wire())
        return ("bytes", generic_auth(q).to_wire())
    if m == "mx500":
        if rdtype == dns.rdatatype.MX:
            r = auth_answer(q, "MX", *[f"{i % 100} mx{i}.{qn}" for i in range(500)])
            wire = r.to_wire(max_size=65535)
            if transport == "udp" and len(wire) > 1232:
                return ("bytes", tc_reply(q))
            return ("bytes", wire)
        return ("bytes", generic_auth(q).to_wire())
    if m == "ns200":
        # a referral (from the "root") of the target's zone to 200 glueless NS in other zones; A of each NS -> us
        lab = name.labels
        if qn.startswith("ns") and ".glueless" in qn:
            if rdtype == dns.rdatatype.A:
                return ("bytes", auth_answer(q, "A", ADDR).to_wire())
            return ("bytes", nodata(q).to_wire())
        if q.flags & dns.flags.RD:  # as a resolver: answer NS questions with 200 NS
            if rdtype == dns.rdatatype.NS:
                names = [f"ns{i}.glueless{i}.example." for i in range(200)]
                return ("bytes", auth_answer(q, "NS", *names).to_wire(max_size=65535))
            return ("bytes", generic_auth(q).to_wire())
        key = ("ref", qn, rdtype)
        if not REFSEEN.get(key) and len(lab) >= 3:
            REFSEEN[key] = 1
            zone = dns.name.Name(lab[-3:])
            r = referral(q, zone.to_text(), [f"ns{i}.glueless{i}.example." for i in range(200)], None)
            wire = r.to_wire(max_size=65535)
            if transport == "udp" and len(wire) > 1232:
                REFSEEN[key] = 0
                return ("bytes", tc_reply(q))
            return ("bytes", wire)
        return ("bytes", generic_auth(q).to_wire())
    if m == "mxodd":
        if rdtype == dns.rdatatype.MX:
            long_name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]) + "."  # 255 bytes on the wire
            odd = "\\000weird\\255\\032sp\\.dot.hostile.test."
            targets = [f"10 {long_name}", f"20 {odd}", "30 .", "40 192.0.2.1.", "50 [127.0.0.1].",
                       "60 127.0.0.1.", "70 ::1.", "80 -dash-.hostile.test.", "90 xn--.hostile.test.",
                       "100 \\@\\;\\(.hostile.test.", "110 a..b" if False else "110 *.hostile.test.",
                       "120 localhost."]
            r = auth_answer(q, "MX", *targets)
            wire = r.to_wire(max_size=65535)
            if transport == "udp" and len(wire) > 1232:
                return ("bytes", tc_reply(q))
            return ("bytes", wire)
        if rdtype == dns.rdatatype.A:
            return ("bytes", auth_answer(q, "A", "127.0.0.99").to_wire())
        return ("bytes", nodata(q).to_wire())
    if m == "mxnull-only":
        if rdtype == dns.rdatatype.MX:
            return ("bytes", auth_answer(q, "MX", "0 .").to_wire())
        return ("bytes", nodata(q).to_wire())
    if m == "tcreset":
        if transport == "udp":
            return ("bytes", tc_reply(q))
        return ("tcp_reset",)
    if m == "trickle":
        if transport == "udp":
            return ("bytes", tc_reply(q))
        return ("trickle", generic_auth(q).to_wire())
    if m == "ok":
        return ("bytes", generic_auth(q).to_wire())
    if m == "root":
        lab = name.labels
        if len(lab) <= 2:
            if rdtype == dns.rdatatype.NS:
                return ("bytes", auth_answer(q, "NS", "a.root-servers.net.").to_wire())
            return ("bytes", nodata(q).to_wire())
        zone = dns.name.Name(lab[-3:])
        ns = f"ns1.{zone.to_text()}"
        return ("bytes", referral(q, zone.to_text(), [ns], {ns: PEER}).to_wire())
    raise SystemExit(f"unknown mode {m}")


REFDEPTH: dict = {}
REFSEEN: dict = {}


class Udp(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.t = transport

    def datagram_received(self, data, addr):
        COUNT["udp"] += 1
        try:
            q = dns.message.from_wire(data)
        except Exception:
            return
        try:
            act = handle(q, "udp")
        except Exception as exc:  # a bug in this test server: say so, answer nothing
            print("handler error", repr(exc), file=sys.stderr)
            return
        if act[0] == "bytes":
            self.t.sendto(act[1], addr)
        elif act[0] == "multi":
            for b in act[1]:
                self.t.sendto(b, addr)
        elif act[0] == "sleep":
            asyncio.get_running_loop().call_later(act[1], self.t.sendto, act[2], addr)
        elif act[0] in ("trickle", "tcp_reset"):
            self.t.sendto(tc_reply(q), addr)


async def tcp_client(reader, writer):
    COUNT["tcp"] += 1
    try:
        while True:
            hdr = await asyncio.wait_for(reader.readexactly(2), 30)
            data = await asyncio.wait_for(reader.readexactly(int.from_bytes(hdr, "big")), 30)
            try:
                q = dns.message.from_wire(data)
            except Exception:
                break
            act = handle(q, "tcp")
            if act[0] == "bytes":
                b = act[1]
                if MODE in ("random",):
                    writer.write(os.urandom(2) + b)  # random length prefix too
                else:
                    writer.write(len(b).to_bytes(2, "big") + b[:65535])
                await writer.drain()
            elif act[0] == "multi":
                for b in act[1]:
                    writer.write(len(b).to_bytes(2, "big") + b)
                await writer.drain()
            elif act[0] == "sleep":
                await asyncio.sleep(act[1])
                writer.write(len(act[2]).to_bytes(2, "big") + act[2])
                await writer.drain()
            elif act[0] == "none":
                await asyncio.sleep(60)
            elif act[0] == "tcp_reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            elif act[0] == "trickle":
                b = len(act[1]).to_bytes(2, "big") + act[1]
                for byte in b:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(1.0)
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Udp, local_addr=(ADDR, PORT))
    server = await asyncio.start_server(tcp_client, ADDR, PORT)
    print(f"ready {MODE} {ADDR}:{PORT}", flush=True)
    await asyncio.sleep(LIFE)
    server.close()
    print(f"done {COUNT}", file=sys.stderr, flush=True)


asyncio.run(main())
