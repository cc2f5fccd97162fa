"""The lean DNS codec of the scan's hot path: build the query, read the common replies (A, AAAA, MX,
CNAME, NS, SOA, a bare OPT) and classify them exactly as the engine's ``exchange.classify`` does.

Anything else or anything odd (other types or classes, EDNS options, extended RCODEs, duplicate or
singleton-breaking records, names outside letters, digits, '-' and '_') is left to dnspython:
``decode`` returns None and the caller goes through ``dns.wire``. Property tests hold the two equal.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

import dns.rcode

from mxdoctor.dns import wire
from mxdoctor.dns.exchange import MAX_CNAME_CHAIN, Classified
from mxdoctor.evidence import Outcome

A, NS, CNAME, SOA, MX, OPT, AAAA = 1, 2, 5, 6, 15, 41, 28
TYPES = {"A": A, "NS": NS, "CNAME": CNAME, "SOA": SOA, "MX": MX, "AAAA": AAAA}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
# the questions the lean path asks and answers (an SOA is read only to be checked, its text is not kept)
QUESTION_TYPES = {k: v for k, v in TYPES.items() if k != "SOA"}
# the 4-bit RCODEs, as dnspython names them
RCODE_NAMES = {code: dns.rcode.to_text(dns.rcode.Rcode(code)) for code in range(16)}
_RCODE_OUTCOMES = {0: Outcome.NOERROR, 3: Outcome.NXDOMAIN, 2: Outcome.SERVFAIL, 5: Outcome.REFUSED,
                   1: Outcome.FORMERR, 4: Outcome.NOTIMP}  # fmt: skip
TC, AA = 0x0200, 0x0400

# label bytes taken here; deleting them from a label leaves nothing when the label is plain
_PLAIN = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
_PLAIN_DOT = _PLAIN + b"."
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
OPT_EDNS0 = b"\x00\x00\x29" + wire.EDNS_PAYLOAD.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00"
_MAX_POINTERS = 16  # dnspython's MAX_COMPRESSION_POINTER_CHAIN
_inet_ntoa = socket.inet_ntoa


class _Odd(Exception):
    """Bytes the lean path does not read; dnspython decides what they are."""


def encode_name(name: str) -> bytes | None:
    """``"mx.example.com."`` -> wire form; None for names the lean path does not build."""
    if name == ".":
        return b"\x00"
    try:
        raw = name.encode("ascii")
    except UnicodeEncodeError:
        return None
    if raw.translate(None, _PLAIN_DOT) or len(raw) > 254:
        return None
    parts = (raw[:-1] if raw.endswith(b".") else raw).split(b".")
    for p in parts:
        if not p or len(p) > 63:
            return None
    return b"".join([bytes((len(p),)) + p for p in parts]) + b"\x00"


class NameCache:
    """``encode_name`` with the wire forms of names kept, so a host's name costs one label on top of
    its domain's (``mx.example.com.`` reuses ``example.com.``). Bounded: cleared when full."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._wire: dict[str, bytes] = {".": b"\x00", "": b"\x00"}

    def wire(self, name: str) -> bytes | None:
        known = self._wire.get(name)
        if known is not None:
            return known or None
        head, _, rest = name.partition(".")
        tail = self.wire(rest)
        raw = head.encode("ascii", "replace")
        if tail is None or not raw or len(raw) > 63 or raw.translate(None, _PLAIN) or len(raw) + len(tail) > 254:
            out = b""
        else:
            out = bytes((len(raw),)) + raw + tail
        if len(self._wire) >= self.size:
            self._wire = {".": b"\x00", "": b"\x00"}
        self._wire[name] = out
        return out or None


def question_bytes(qname_wire: bytes, qtype: int) -> bytes:
    """The question section of a query for (name, type) in class IN."""
    return qname_wire + qtype.to_bytes(2, "big") + b"\x00\x01"


def encode_query(ident: int, question: bytes, *, rd: bool = True, edns: bool = True) -> bytes:
    """The query ``wire.encode_query`` builds: one question, RD, and EDNS0 with a 1232-byte payload."""
    flags = 0x0100 if rd else 0
    if edns:
        return _HEADER.pack(ident, flags, 1, 0, 0, 1) + question + OPT_EDNS0
    return _HEADER.pack(ident, flags, 1, 0, 0, 0) + question


def _name(data: bytes, pos: int, end: int, memo: dict[int, tuple[str, int, int]]) -> tuple[str, int]:
    """Read a possibly compressed name as dnspython does (pointers strictly backwards, each hop
    confined before the previous segment); returns its text, case kept, and the position after it.

    ``memo`` holds the names already read in this message by start offset, as (text, hops, wire
    length): a pointer to one of them ends the walk, since everything read earlier lies before."""
    start = pos
    labels: list[bytes] = []
    total = 1
    after = -1
    biggest = seg_start = pos
    hops = 0
    tail = ""
    while True:
        if pos >= end:
            raise _Odd
        c = data[pos]
        if c == 0:
            pos += 1
            break
        if c < 64:
            stop = pos + 1 + c
            if stop > end:
                raise _Odd
            label = data[pos + 1 : stop]
            if label.translate(None, _PLAIN):
                raise _Odd
            labels.append(label)
            total += c + 1
            pos = stop
        elif c >= 192:
            if pos + 1 >= end:
                raise _Odd
            target = ((c & 0x3F) << 8) | data[pos + 1]
            hops += 1
            if target >= biggest or hops > _MAX_POINTERS:
                raise _Odd
            if after < 0:
                after = pos + 2
            known = memo.get(target)
            if known is not None and hops == 1:
                tail, more, length = known
                hops += more
                total += length - 1
                if hops > _MAX_POINTERS:
                    raise _Odd
                break
            biggest = target
            end = seg_start
            seg_start = pos = target
        else:
            raise _Odd
    if total > 255:
        raise _Odd
    if labels:
        head = b".".join(labels).decode("ascii") + "."
        text = head + tail if tail and tail != "." else head
    else:
        text = tail or "."
    memo[start] = (text, hops, total)
    return text, (after if after >= 0 else pos)


def _rr(data: bytes, pos: int, n: int) -> tuple[int, int, int, int, int, int]:
    """The fixed part of a record at ``pos`` (after its owner): type, class, TTL, rdata length, and
    where its rdata starts and ends; _Odd when it runs past the message."""
    if pos + 10 > n:
        raise _Odd
    rtype, rclass, ttl, rdlen = _RR.unpack_from(data, pos)
    end = pos + 10 + rdlen
    if end > n:
        raise _Odd
    return rtype, rclass, ttl, rdlen, pos + 10, end


class RRset:
    """The records of one (owner, type) in the answer section, as dnspython groups them."""

    __slots__ = ("ttl", "texts", "keys")

    def __init__(self, ttl: int, text: str, key: str) -> None:
        self.ttl = ttl
        self.texts = [text]
        self.keys: set[str] | str = key  # a set from the second record on


class Reply:
    """A reply read by the lean codec; ``rrsets`` holds the answer section by (owner lower, type)."""

    __slots__ = ("id", "flags", "rcode", "qname", "qtype", "rrsets")

    def __init__(
        self, ident: int, flags: int, rcode: int, qname: str, qtype: int, rrsets: dict[tuple[str, int], RRset]
    ) -> None:
        self.id = ident
        self.flags = flags
        self.rcode = rcode
        self.qname = qname
        self.qtype = qtype
        self.rrsets = rrsets

    @property
    def rcode_text(self) -> str:
        return RCODE_NAMES.get(self.rcode, str(self.rcode))


def _rdata(data: bytes, rtype: int, pos: int, end: int, memo: dict[int, tuple[str, int, int]]) -> tuple[str, str]:
    """(text as dnspython writes it, key it compares records by) of one rdata, or _Odd."""
    size = end - pos
    if rtype == A:
        if size != 4:
            raise _Odd
        text = _inet_ntoa(data[pos:end])
        return text, text
    if rtype == AAAA:
        if size != 16:
            raise _Odd
        text = socket.inet_ntop(socket.AF_INET6, data[pos:end])
        return text, text
    if rtype == MX:
        if size < 3:
            raise _Odd
        exchange, stop = _name(data, pos + 2, end, memo)
        if stop != end:
            raise _Odd
        text = f"{(data[pos] << 8) | data[pos + 1]} {exchange}"
        return text, text.lower()
    if rtype == CNAME or rtype == NS:
        target, stop = _name(data, pos, end, memo)
        if stop != end:
            raise _Odd
        return target, target.lower()
    if rtype == SOA:
        mname, stop = _name(data, pos, end, memo)
        rname, stop = _name(data, stop, end, memo)
        if stop + 20 != end:
            raise _Odd
        return "", ""  # checked only: no question of the scan asks SOA, and a second one is odd anyway
    raise _Odd


def decode(data: bytes, asked: tuple[bytes, str] | None = None) -> Reply | None:
    """Read a reply on the lean path; None when dnspython must read it (never raises).

    ``asked`` is the question as sent (``question_bytes``, and the name's text): when the reply
    repeats it byte for byte, it is taken as read."""
    try:
        return _decode(data, asked)
    except (_Odd, IndexError, struct.error, UnicodeDecodeError):
        return None


def _decode(data: bytes, asked: tuple[bytes, str] | None) -> Reply:
    n = len(data)
    if n < 12:
        raise _Odd
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    if qd != 1 or flags & 0x7800:  # one question, opcode QUERY
        raise _Odd
    memo: dict[int, tuple[str, int, int]] = {}
    if asked is not None and data.startswith(asked[0], 12):
        question, qname = asked
        pos = 12 + len(question)
        memo[12] = (qname, 0, len(question) - 4)
        qtype = (data[pos - 4] << 8) | data[pos - 3]
    else:
        qname, pos = _name(data, 12, n, memo)
        if pos + 4 > n:
            raise _Odd
        qtype = (data[pos] << 8) | data[pos + 1]
        if data[pos + 2] != 0 or data[pos + 3] != 1:
            raise _Odd
        pos += 4
    rrsets: dict[tuple[str, int], RRset] = {}
    seen_opt = False
    for i in range(an + ns + ar):
        # owners are mostly the root (OPT) or one pointer to a name read before: no walk for those
        c = data[pos]
        if c == 0:
            owner = "."
            pos += 1
        elif c >= 192 and (known := memo.get(((c & 0x3F) << 8) | data[pos + 1])) is not None and known[1] < 16:
            owner = known[0]
            pos += 2
        else:
            owner, pos = _name(data, pos, n, memo)
        rtype, rclass, ttl, rdlen, pos, end = _rr(data, pos, n)
        if rtype == OPT:
            # one OPT, at the root, in the additional section, without options or extended RCODE
            if i < an + ns or seen_opt or owner != "." or rdlen or ttl >> 24:
                raise _Odd
            seen_opt = True
            continue
        if rclass != 1:
            raise _Odd
        if rtype == A:  # the most common record, read here without a call
            if rdlen != 4:
                raise _Odd
            text = key = _inet_ntoa(data[pos:end])
        else:
            text, key = _rdata(data, rtype, pos, end, memo)
        pos = end
        if i >= an:
            continue
        if ttl > 0x7FFFFFFF:
            ttl = 0
        k = (owner.lower(), rtype)
        rrset = rrsets.get(k)
        if rrset is None:
            rrsets[k] = RRset(ttl, text, key)
        else:
            # dnspython keeps one of equal records and the last of a singleton type: not ours to mimic
            keys = rrset.keys
            if isinstance(keys, str):
                keys = rrset.keys = {keys}
            if key in keys or rtype == CNAME or rtype == SOA:
                raise _Odd
            keys.add(key)
            rrset.texts.append(text)
            if ttl < rrset.ttl:
                rrset.ttl = ttl
    return Reply(ident, flags, flags & 0xF, qname.lower(), qtype, rrsets)


class Answer(NamedTuple):
    """``exchange.Classified`` as a tuple: the engine makes one per reply, and a tuple is cheaper."""

    outcome: Outcome
    records: tuple[str, ...] = ()
    cnames: tuple[str, ...] = ()
    ttl: int | None = None
    detail: str | None = None


def classify(reply: Reply, qname: str, qtype: str) -> Classified:
    """``exchange.classify`` over a lean Reply: data, no data (RFC 2308), no name, or a failure."""
    return Classified(*answer(reply, qname, qtype))


def answer(reply: Reply, qname: str, qtype: str) -> Answer:
    """What ``classify`` says, as an Answer."""
    rcode = reply.rcode
    if rcode != 0 and rcode != 3:
        return Answer(_RCODE_OUTCOMES.get(rcode, Outcome.OTHER_RCODE))
    rrsets = reply.rrsets
    name = qname.lower()
    rdtype = QUESTION_TYPES[qtype]
    cnames: list[str] = []
    for _ in range(MAX_CNAME_CHAIN):
        rrset = rrsets.get((name, rdtype))
        if rrset is not None and rcode == 0:
            return Answer(Outcome.NOERROR, tuple(rrset.texts), tuple(cnames), rrset.ttl)
        cname = rrsets.get((name, CNAME))
        if cname is None or rdtype == CNAME:
            break
        name = cname.texts[0].lower()
        cnames.append(name)
    if rcode == 3:
        return Answer(Outcome.NXDOMAIN, cnames=tuple(cnames))
    others = sorted({TYPE_NAMES[t] for (owner, t) in rrsets if owner == name and t != CNAME})
    if others:
        detail = f"answer holds {', '.join(others)} at {name} where {qtype} was asked"
        return Answer(Outcome.BROKEN, cnames=tuple(cnames), detail=detail)
    return Answer(Outcome.NODATA, cnames=tuple(cnames))


_NOERROR, _NODATA, _NXDOMAIN = Outcome.NOERROR, Outcome.NODATA, Outcome.NXDOMAIN
_NO_DATA = Answer(_NODATA)
_NO_NAME = Answer(_NXDOMAIN)
_QNAME_POINTER = b"\xc0\x0c"


def quick(data: bytes, question: bytes, qname: str, qtype: int) -> tuple[Answer, int] | None:
    """``answer(decode(data, (question, qname)), qname, ...)`` and the reply's flags, for the replies
    a scan gets most (NOERROR or NXDOMAIN; answers of the type asked owned by the question's name;
    at most one SOA in the authority section; an OPT without options); None for anything else,
    which ``decode`` then reads. ``question`` is what was sent, ``qname`` its lower-case text."""
    try:
        return _quick(data, question, qname, qtype)
    except (_Odd, IndexError, struct.error, UnicodeDecodeError):
        return None


def _near_name(data: bytes, pos: int, end: int, qname: str, size: int, text: bool = True) -> tuple[str, int]:
    """``_name`` for the names a reply compresses most: plain labels, then one pointer to a suffix
    of the question's name (at offset 12, ``size`` bytes, ``qname`` its text). A suffix's text
    starts at the same offset in ``qname`` as its labels in the question; always backwards, read
    already. Returns the text (``text`` False: "") and the position after; other names go to
    ``_name``."""
    start = pos
    total = 0
    while True:
        c = data[pos]
        if 0 < c < 64:
            stop = pos + 1 + c
            if stop > end or data[pos + 1 : stop].translate(None, _PLAIN):
                raise _Odd
            total += c + 1
            pos = stop
            continue
        if c >= 192 and pos + 1 < end:
            at = (((c & 0x3F) << 8) | data[pos + 1]) - 12
            if 0 <= at < size and (at == 0 or qname[at - 1] == "."):
                if total + size - at > 255:
                    raise _Odd
                if not text:
                    return "", pos + 2
                tail = qname[at:] or "."
                if start == pos:
                    return tail, pos + 2
                head = data[start:pos]
                labels = []
                i = 0
                while i < len(head):
                    labels.append(head[i + 1 : i + 1 + head[i]])
                    i += 1 + head[i]
                name = b".".join(labels).decode("ascii") + "."
                return (name + tail if tail != "." else name), pos + 2
        return _name(data, start, end, {12: (qname, 0, size)})


def _quick(data: bytes, question: bytes, qname: str, qtype: int) -> tuple[Answer, int] | None:
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    rcode = flags & 0x780F  # opcode and RCODE: QUERY with NOERROR or NXDOMAIN only
    if qd != 1 or (rcode and rcode != 3) or not data.startswith(question, 12):
        return None
    n = len(data)
    pos = 12 + len(question)
    texts: list[str] = []
    ttl = 0x7FFFFFFF
    size = len(question) - 4  # the question's name in wire form
    for _ in range(an):
        if data[pos : pos + 2] != _QNAME_POINTER:
            return None
        rtype, rclass, rttl, rdlen = _RR.unpack_from(data, pos + 2)
        pos += 12
        end = pos + rdlen
        if rtype != qtype or rclass != 1 or end > n:
            return None
        if rtype == A:
            if rdlen != 4:
                return None
            text = key = _inet_ntoa(data[pos:end])
        elif rtype == AAAA:
            if rdlen != 16:
                return None
            text = key = socket.inet_ntop(socket.AF_INET6, data[pos:end])
        elif rtype == MX:
            if rdlen < 3:
                return None
            exchange, stop = _near_name(data, pos + 2, end, qname, size)
            if stop != end:
                return None
            text = f"{(data[pos] << 8) | data[pos + 1]} {exchange}"
            key = text.lower()
        else:
            return None
        if texts and (key in texts if rtype != MX else key in (t.lower() for t in texts)):
            return None  # equal records: dnspython keeps one, decode says how
        texts.append(text)
        if rttl > 0x7FFFFFFF:
            rttl = 0
        if rttl < ttl:
            ttl = rttl
        pos = end
    if ns:
        if ns != 1:
            return None
        _, pos = _near_name(data, pos, n, qname, size, False)
        rtype, rclass, _, rdlen, pos, end = _rr(data, pos, n)
        if rtype != SOA or rclass != 1:
            return None
        _, stop = _near_name(data, pos, end, qname, size, False)
        _, stop = _near_name(data, stop, end, qname, size, False)
        if stop + 20 != end:
            return None
        pos = end
    if ar:
        # one OPT at the root, without options or an extended RCODE
        if ar != 1 or pos + 11 > n or data[pos] != 0:
            return None
        rtype, _, rttl, rdlen = _RR.unpack_from(data, pos + 1)
        if rtype != OPT or rdlen or rttl >> 24:
            return None
    if rcode:
        return _NO_NAME, flags
    if texts:
        return Answer(_NOERROR, tuple(texts), (), ttl), flags
    return _NO_DATA, flags
