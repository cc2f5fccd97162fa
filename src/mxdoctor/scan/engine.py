"""The scan's query engine: a window of domains, each routed as route.RouteMachine routes, their
questions sent over one non-blocking UDP socket per resolver drained by ``loop.add_reader``, every
timeout in one queue per timeout length, the attempts chosen by ``exchange.AttemptPlan``, and a
polite sender.

One question's answer is the Lookup a ``RecursiveView`` of ``diagnose`` gives for it (the lean codec
reads the common replies, dnspython the rest); answers are shared within a run, as the engine's
per-run cache shares them.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import gc
import random
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dns.flags
import dns.message

from mxdoctor import evidence, route
from mxdoctor.dns import exchange, wire
from mxdoctor.dns.exchange import AttemptPlan, AttemptResult
from mxdoctor.evidence import Lookup, Outcome, Transport
from mxdoctor.scan import codec
from mxdoctor.scan.codec import Answer

VIEW = "internal"  # the view name the records' lookups carry, as diagnose names the --resolver view
TICK = 0.02  # seconds between timer and rate-limit passes
CACHE_SIZE = 20_000  # answers kept for the questions domains share (MX hosts of a hoster)
STORM_WINDOW = 64  # replies judged together for a REFUSED/SERVFAIL storm
STORM_SHARE = 0.75  # that share of REFUSED/SERVFAIL in a window is a storm: halve the server's rate
GC_THRESHOLD = 50_000  # allocations between young-generation collections during a run (CPython: 700)
_FINAL_FAST = frozenset((Outcome.NOERROR, Outcome.NODATA, Outcome.NXDOMAIN, Outcome.SERVFAIL, Outcome.REFUSED))
_STORM = frozenset((Outcome.REFUSED, Outcome.SERVFAIL))


@dataclass(frozen=True)
class Limits:
    """How hard to push: ``qps`` queries per second in all (0: no limit), at most ``inflight``
    queries outstanding at each server, ``timeout`` seconds for a first attempt (later ones wait
    twice as long), ``retries`` attempts after a timeout (1 is diagnose's plan)."""

    qps: float = 100.0
    inflight: int = 64
    timeout: float = 2.0
    retries: int = 1


_LOOKUP_FIELDS = tuple(f.name for f in dataclasses.fields(Lookup))
# The fields past those given keep their declared defaults (a field added to Lookup needs one).
_LOOKUP_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Lookup) if f.default is not dataclasses.MISSING}
_new = object.__new__
_ID = struct.Struct("!H")
_QUERY_HEAD = codec.encode_query(0, b"", edns=True)[2:12]  # flags (RD) and counts after the ID: 1 question, 1 OPT
_IN_A, _IN_AAAA = codec.question_bytes(b"", codec.A), codec.question_bytes(b"", codec.AAAA)
_ANSWERS = frozenset(o for o in Outcome if o.is_answer)
_quick = codec.quick
_RCODES = [codec.RCODE_NAMES[i] for i in range(16)]


def make_lookup(*values: Any) -> Lookup:
    """``Lookup(*values)`` without the per-field ``object.__setattr__`` of a frozen dataclass's
    ``__init__`` (a few µs per answer, three answers per domain); equal, and as immutable."""
    lk: Lookup = _new(Lookup)
    lk.__dict__.update(_LOOKUP_DEFAULTS)
    lk.__dict__.update(zip(_LOOKUP_FIELDS, values, strict=False))
    return lk


class _Server:
    """One resolver: its socket, what is in flight there, its send queue and its rate budget."""

    def __init__(self, server: evidence.Server, limits: Limits, share: float, index: int = 0) -> None:
        self.server = server
        self.index = index
        family = socket.AF_INET6 if ":" in server.address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            except OSError:
                pass
        self.sock.connect((server.address, server.port))
        self.ids: dict[int, _Query] = {}
        self.queue: collections.deque[_Query] = collections.deque()
        self.inflight = 0
        self.cap = limits.inflight
        self.rate = share  # queries per second for this server, 0: no limit
        self.tokens = min(1.0, share) if share else 0.0
        self.stamp = time.monotonic()
        self.factor = 1.0  # backoff multiplier on cap and rate
        self.window_total = 0
        self.window_bad = 0
        self.backoffs = 0
        self.sent = 0

    def allowance(self, now: float) -> float:
        if not self.rate:
            return float("inf")
        rate = self.rate * self.factor
        self.tokens = min(max(1.0, rate * TICK * 2), self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        return self.tokens

    def judge(self, outcome: Outcome) -> None:
        """AIMD on REFUSED/SERVFAIL storms: halve on a bad window, grow back slowly on good ones."""
        self.window_total += 1
        if outcome in _STORM:
            self.window_bad += 1
        if self.window_total >= STORM_WINDOW:
            self.judge_window()

    def judge_window(self) -> None:
        if self.window_bad >= STORM_SHARE * self.window_total:
            self.factor = max(1 / 64, self.factor / 2)
            self.backoffs += 1
        elif self.factor < 1.0:
            self.factor = min(1.0, self.factor * 1.25)
        self.window_total = self.window_bad = 0

    @property
    def effective_cap(self) -> int:
        return max(1, int(self.cap * self.factor))


class _Query:
    """One question on its way through the servers, with its attempts."""

    __slots__ = ("key", "qname", "qtype", "code", "wire_q", "tail", "servers", "index", "attempt", "edns",
                 "plan", "ids", "sent", "strays", "waiters", "done", "transport")  # fmt: skip

    def __init__(self, key: tuple[str, str], wire_q: bytes | None, servers: list[_Server]) -> None:
        self.key = key
        self.qname, self.qtype = key
        self.code = codec.QUESTION_TYPES.get(self.qtype, 0)
        self.wire_q = wire_q  # None: a name the lean codec does not build, dnspython does
        # the query after its ID, as the first attempt sends it (EDNS0): only the ID is spliced in
        self.tail = _QUERY_HEAD + wire_q + codec.OPT_EDNS0 if wire_q is not None else b""
        self.servers = servers
        self.index = 0
        self.attempt = 1
        self.edns: int | None = 0
        self.plan: AttemptPlan | None = None
        self.ids: list[int] = []
        self.sent = 0  # the engine's number of this query's latest send
        self.strays: list[str] | None = None
        self.waiters: list[_Domain] = []
        self.done = False
        self.transport = Transport.UDP


class _Domain:
    """One domain's route on its way: ``route.read_mx`` and ``route.assemble`` decide, as they do
    for diagnose's RouteMachine; the answers are kept by (name, type) tuples."""

    __slots__ = ("tag", "name", "mx", "reading", "answers", "outstanding")

    def __init__(self, tag: object, name: str) -> None:
        self.tag = tag
        self.name = route.fqdn(name)
        self.mx: Lookup | None = None
        self.reading: route.MxReading | None = None
        self.answers: dict[tuple[str, str], Lookup] = {}
        self.outstanding = 0

    def result(self) -> route.Route:
        assert self.mx is not None and self.reading is not None
        kind, hosts, null_with_others, bad = self.reading
        get = self.answers.get
        return route.assemble(self.name, kind, self.mx, hosts, lambda h, t: get((h, t)), null_with_others, bad)


class Engine:
    """Resolve the routes of many domains at once. ``feed`` gives (tag, domain) pairs on demand;
    ``done`` gets (tag, Route) as each domain completes, in completion order."""

    def __init__(self, servers: tuple[evidence.Server, ...], limits: Limits) -> None:
        if not servers:
            raise ValueError("no server to scan through")
        self.limits = limits
        share = limits.qps / len(servers) if limits.qps else 0.0
        self.servers = [_Server(s, limits, share, i) for i, s in enumerate(servers)]
        self.window = max(1, limits.inflight * len(servers))
        # keyed by (qname, qtype): a tuple hashes in C, a Question in Python
        self.cache: collections.OrderedDict[tuple[str, str], Lookup] = collections.OrderedDict()
        self.pending: dict[tuple[str, str], _Query] = {}
        # Every send's deadline as (deadline, server index, query ID, send number), in one queue per
        # timeout (first attempts, retries): sends come in time order and share a timeout, so each
        # queue is in deadline order without a heap. Numbers only: a query answered before its
        # deadline is freed at once, and the collector has nothing to walk there.
        self.timers: tuple[collections.deque[tuple[float, int, int, int]], ...] = (collections.deque(),
                                                                                   collections.deque())  # fmt: skip
        self._timeout, self._retry_timeout = limits.timeout, 2 * limits.timeout
        self._sends = 0
        self.active = 0
        self.queries = 0
        self.lean = 0
        self.stray = 0
        self._rotate = 0
        self._rand = random.Random()
        self._tasks: set[asyncio.Task[None]] = set()
        self._names = codec.NameCache(CACHE_SIZE)  # wire forms: a host's name reuses its domain's

    def close(self) -> None:
        for s in self.servers:
            s.sock.close()

    # -- the run -----------------------------------------------------------------------------------

    async def run(
        self,
        feed: Iterator[tuple[object, str]],
        done: Callable[[object, route.Route], None],
        room: Callable[[], bool] = lambda: True,
    ) -> None:
        """Resolve every domain ``feed`` yields; ``room()`` False holds new domains back (the writer's
        reorder buffer is full)."""
        loop = asyncio.get_running_loop()
        self._feed = feed
        self._done = done
        self._room = room
        self._exhausted = False
        self._finished = loop.create_future()
        for s in self.servers:
            loop.add_reader(s.sock.fileno(), self._guarded, self._drain, s)
        # A scan makes a few objects per query and keeps a window of them alive: the collector's
        # default pace walks that window (and every module) over and over, a sixth of the run's CPU.
        # The hot path makes no reference cycles, so the young generation is collected less often.
        threshold = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, threshold[1], threshold[2])
        try:
            self._guarded(self._fill)
            self._guarded(self._tick)
            await self._finished
        finally:
            gc.set_threshold(*threshold)
            gc.unfreeze()
            for s in self.servers:
                loop.remove_reader(s.sock.fileno())
            if self._handle is not None:
                self._handle.cancel()
            for task in list(self._tasks):
                task.cancel()

    _handle: asyncio.TimerHandle | None = None

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        """Run a loop callback; an exception (a bug: network faults are answers) ends the run with it
        instead of being logged by the loop while the run waits for ever."""
        try:
            fn(*args)
        except Exception as exc:  # re-raised from run()
            if not self._finished.done():
                self._finished.set_exception(exc)

    def _tick(self) -> None:
        now = time.monotonic()
        for timers in self.timers:
            while timers and timers[0][0] <= now:
                _, index, ident, number = timers.popleft()
                q = self.servers[index].ids.get(ident)
                # only the query's latest send times out (an ID reused since is another query's send)
                if q is not None and q.sent == number and not q.done and q.transport is Transport.UDP:
                    self._timed_out(q)
        self._fill()
        self._pump(now)
        self._check_end()
        if not self._finished.done():
            self._handle = asyncio.get_running_loop().call_later(TICK, self._guarded, self._tick)

    def _check_end(self) -> None:
        if self._exhausted and self.active == 0 and not self._finished.done():
            self._finished.set_result(None)

    def _fill(self) -> None:
        """Start domains while the window has room."""
        while not self._exhausted and self.active < self.window and self._room():
            item = next(self._feed, None)
            if item is None:
                self._exhausted = True
                break
            tag, name = item
            d = _Domain(tag, name)
            self.active += 1
            d.outstanding = 1
            self._ask((d.name, "MX"), d)

    # -- domains -----------------------------------------------------------------------------------

    def _answer(self, d: _Domain, key: tuple[str, str], lookup: Lookup) -> None:
        if d.mx is None:  # the MX answer: the exchangers' A and AAAA next, all at once
            d.mx = lookup
            d.reading = reading = route.read_mx(d.name, lookup)
            hosts = reading[1]
            if hosts:
                d.outstanding = 2 * len(hosts)  # set first: a cached answer comes back at once
                wire_of = self._names.wire
                for _, host, _ in hosts:
                    name = wire_of(host)
                    self._ask((host, "A"), d, None if name is None else name + _IN_A)
                    self._ask((host, "AAAA"), d, None if name is None else name + _IN_AAAA)
                return
        else:
            d.answers[key] = lookup
            d.outstanding -= 1
            if d.outstanding:
                return
        self.active -= 1
        self._done(d.tag, d.result())

    def _ask(self, key: tuple[str, str], d: _Domain, wire_q: bytes | None = None) -> None:
        """Ask (name, type) for ``d``: from the cache, by joining the same question in flight, or anew.
        ``wire_q``: the question section when the caller has it."""
        cached = self.cache.get(key)
        if cached is not None:
            self._answer(d, key, cached)
            return
        query = self.pending.get(key)
        if query is None:
            if wire_q is None:
                qname, qtype = key
                wire_name = self._names.wire(qname)
                code = codec.QUESTION_TYPES.get(qtype)
                wire_q = codec.question_bytes(wire_name, code) if wire_name is not None and code else None
            servers = self.servers
            if len(servers) > 1:  # spread the first tries; the rest in order after a failure
                start = self._rotate % len(servers)
                self._rotate += 1
                servers = servers[start:] + servers[:start]
            query = _Query(key, wire_q, servers)
            self.pending[key] = query
            query.servers[0].queue.append(query)
        query.waiters.append(d)

    # -- sending -----------------------------------------------------------------------------------

    def _pump(self, now: float) -> None:
        for s in self.servers:
            if not s.queue:
                continue
            budget = s.allowance(now)
            cap = s.effective_cap
            while s.queue and s.inflight < cap and budget >= 1.0:
                q = s.queue.popleft()
                s.inflight += 1
                if not self._send(s, q, now):
                    break
                budget -= 1.0
                if s.rate:
                    s.tokens -= 1.0

    def _send(self, s: _Server, q: _Query, now: float) -> bool:
        """Send the query's current attempt; False when the socket is full (the query waits)."""
        rand = self._rand.getrandbits
        ids = s.ids
        ident = rand(16)
        while ident in ids:
            ident = rand(16)
        if q.wire_q is not None and q.edns is not None:
            data = _ID.pack(ident) + q.tail
        elif q.wire_q is not None:
            data = codec.encode_query(ident, q.wire_q, edns=False)
        else:
            data = wire.encode_query(ident, q.qname, q.qtype, rd=True, edns=q.edns)
        try:
            s.sock.send(data)
        except BlockingIOError:
            s.inflight -= 1
            s.queue.appendleft(q)
            return False
        except OSError as exc:
            self._result(s, q, Answer(Outcome.NETWORK_ERROR, detail=str(exc)), None, False, False)
            return True
        ids[ident] = q
        q.ids.append(ident)
        s.sent += 1
        self.queries += 1
        self._sends = number = q.sent = self._sends + 1
        if q.attempt > 1:
            timers, deadline = self.timers[1], now + self._retry_timeout
        else:
            timers, deadline = self.timers[0], now + self._timeout
        if timers and timers[-1][0] > deadline:  # a caller's clock read a little earlier: keep the order
            deadline = timers[-1][0]
        timers.append((deadline, s.index, ident, number))
        return True

    # -- receiving ---------------------------------------------------------------------------------

    def _drain(self, s: _Server) -> None:
        recv = s.sock.recv
        while True:
            try:
                data = recv(65535)
            except BlockingIOError:
                break
            except OSError as exc:  # an ICMP error on the connected socket: every waiter sees it
                for q in list(s.ids.values()):
                    if not q.done and q.transport is Transport.UDP:
                        self._result(s, q, Answer(Outcome.NETWORK_ERROR, detail=str(exc)), None, False, False)
                continue
            self._datagram(s, data)
        self._fill()
        self._pump(time.monotonic())
        self._check_end()

    def _datagram(self, s: _Server, data: bytes) -> None:
        if len(data) < 12:
            self.stray += 1
            return
        q = s.ids.get((data[0] << 8) | data[1])
        if q is None or q.done or q.transport is Transport.TCP:
            self.stray += 1
            return
        wq = q.wire_q
        if wq is not None:
            hit = _quick(data, wq, q.qname, q.code)
            if hit is not None:  # the common reply, read without building a Reply
                self.lean += 1
                c, flags = hit
                if q.plan is None and not flags & codec.TC:
                    # s.judge(c.outcome) inlined: a quick answer is never REFUSED or SERVFAIL
                    s.window_total += 1
                    if s.window_total >= STORM_WINDOW:
                        s.judge_window()
                    self._final(s, q, c, _RCODES[flags & 0xF], bool(flags & codec.AA))
                else:
                    self._result(s, q, c, _RCODES[flags & 0xF], bool(flags & codec.TC), bool(flags & codec.AA))
                return
        if wq is not None and data[12 : 12 + len(wq)].lower() == wq:
            reply = codec.decode(data, (wq, q.qname))
            if reply is not None:
                self.lean += 1
                c = codec.answer(reply, q.qname, q.qtype)
                flags = reply.flags
                if q.plan is None and not flags & codec.TC and c.outcome in _FINAL_FAST:
                    s.judge(c.outcome)  # the common case of _result, without its detours
                    self._final(s, q, c, reply.rcode_text, bool(flags & codec.AA))
                else:
                    self._result(s, q, c, reply.rcode_text, bool(flags & codec.TC), bool(flags & codec.AA))
                return
        decoded = wire.decode(data)
        if isinstance(decoded, wire.Undecodable):
            if decoded.qname is not None and (decoded.qname, decoded.qtype) == (q.qname, q.qtype):
                self._result(s, q, Answer(Outcome.BROKEN, detail=decoded.detail), None, decoded.truncated, False)
            else:
                self._stray(q, decoded.detail if decoded.qname is None else "reply for another question")
            return
        if not wire.matches(decoded, q.qname, q.qtype):
            got = wire.question_of(decoded)
            shown = f"{got[0]}/{got[1]}" if got else "no question"
            self._stray(q, f"reply with ID {decoded.id} for another question ({shown})")
            return
        self._message(s, q, decoded)

    def _stray(self, q: _Query, detail: str) -> None:
        self.stray += 1
        if q.strays is None:
            q.strays = []
        if len(q.strays) < exchange.MAX_STRAYS:
            q.strays.append(detail)

    def _message(self, s: _Server, q: _Query, msg: dns.message.Message) -> None:
        full = exchange.classify(msg, q.qname, q.qtype)  # (its count of dropped records is not kept here)
        c = Answer(full.outcome, full.records, full.cnames, full.ttl, full.detail)
        tc = bool(msg.flags & dns.flags.TC)
        self._result(s, q, c, wire.rcode_text(msg), tc, bool(msg.flags & dns.flags.AA))

    def _timed_out(self, q: _Query) -> None:
        s = q.servers[q.index]
        if q.strays:
            c = Answer(Outcome.MALFORMED, detail="; ".join(q.strays))
        else:
            c = Answer(Outcome.TIMEOUT)
        self._result(s, q, c, None, False, False, timed_out=True)

    # -- what an attempt got -----------------------------------------------------------------------

    def _result(
        self, s: _Server, q: _Query, c: Answer, rcode: str | None, tc: bool, aa: bool, *, timed_out: bool = False
    ) -> None:
        if not timed_out:
            s.judge(c.outcome)
        if q.plan is None and not tc and c.outcome in _FINAL_FAST:
            self._final(s, q, c, rcode, aa)
            return
        if q.plan is None:
            q.plan = AttemptPlan()
        nxt = None
        if q.plan.next() is not None:  # past the plan only extra --retries remain
            q.plan.give(AttemptResult(c.outcome, rcode, tc))
            nxt = q.plan.next()
        if nxt is None and c.outcome is Outcome.TIMEOUT and q.transport is Transport.UDP:
            if q.attempt < 1 + self.limits.retries:
                # the same query again, EDNS kept: resolvers do not drop EDNS after a time-out
                nxt = exchange.Attempt(q.attempt + 1, Transport.UDP, q.edns, "RetryOnTimeout")
        elif nxt is not None and c.outcome is Outcome.TIMEOUT and q.attempt >= 1 + self.limits.retries:
            nxt = None
        if nxt is None:
            self._final(s, q, c, rcode, aa)
            return
        q.attempt = nxt.number
        q.edns = nxt.edns
        q.transport = nxt.transport
        if nxt.transport is Transport.TCP:
            task = asyncio.ensure_future(self._tcp(s, q))
            self._tasks.add(task)
            task.add_done_callback(self._tcp_done)
            return
        s.inflight -= 1
        s.queue.appendleft(q)  # a retry goes before new work
        self._pump(time.monotonic())

    def _tcp_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and not self._finished.done():
            self._finished.set_exception(task.exception())  # type: ignore[arg-type]

    async def _tcp(self, s: _Server, q: _Query) -> None:
        reply = await exchange.tcp_query(
            s.server.address, s.server.port, q.qname, q.qtype, rd=True, edns=q.edns, timeout=self.limits.timeout
        )
        if q.done:
            return
        if reply is None:
            self._result(s, q, Answer(Outcome.TIMEOUT), None, False, False, timed_out=True)
        elif isinstance(reply, OSError):
            self._result(s, q, Answer(Outcome.NETWORK_ERROR, detail=str(reply)), None, False, False)
        elif isinstance(reply, wire.Undecodable):
            kind = Outcome.BROKEN if reply.qname is not None else Outcome.MALFORMED
            self._result(s, q, Answer(kind, detail=reply.detail), None, False, False)
        else:
            c = Answer(*dataclasses.astuple(exchange.classify(reply, q.qname, q.qtype)))
            # over TCP a TC bit means nothing more to try (the plan goes to TCP only from UDP)
            self._result(s, q, c, wire.rcode_text(reply), False, bool(reply.flags & dns.flags.AA))
        self._pump(time.monotonic())
        self._check_end()

    def _final(self, s: _Server, q: _Query, c: Answer, rcode: str | None, aa: bool) -> None:
        """This server's last word; a failure moves on to the next server, as a stub does."""
        s.inflight -= 1
        ids = s.ids
        for ident in q.ids:
            ids.pop(ident, None)
        q.ids = []
        if c.outcome not in _ANSWERS and q.index + 1 < len(q.servers):
            q.index += 1
            q.attempt, q.edns, q.plan, q.strays, q.transport = 1, 0, None, None, Transport.UDP
            q.servers[q.index].queue.append(q)
            return
        q.done = True
        lookup: Lookup = _new(Lookup)
        fields = lookup.__dict__
        fields.update(_LOOKUP_DEFAULTS)
        fields["view"], fields["server"], fields["qname"], fields["qtype"] = VIEW, None, q.qname, q.qtype
        fields["outcome"], fields["rcode"], fields["records"], fields["cnames"] = c.outcome, rcode, c.records, c.cnames
        fields["ttl"], fields["authoritative"], fields["detail"] = c.ttl, aa, c.detail
        key = q.key
        del self.pending[key]
        cache = self.cache
        cache[key] = lookup
        if len(cache) > CACHE_SIZE:  # the oldest goes
            cache.popitem(last=False)
        waiters, q.waiters = q.waiters, []  # the timer heap holds q until its deadline: not the domains
        for d in waiters:
            self._answer(d, key, lookup)
