"""Queue shape: messages per destination domain in qshape's geometric age buckets, with the oldest
message and the dominant deferral reason of each domain. One pass over the record stream; memory
grows with the number of domains and distinct reasons, not with the number of messages.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from mxdoctor.queues import classify
from mxdoctor.queues.classify import Category, Deferral
from mxdoctor.queues.record import Item, Malformed, Mta, QueuedMessage

# qshape's default columns: T, then ages below 5, 10, 20, ... 1280 minutes, then 1280+.
LIMITS_MINUTES = (5, 10, 20, 40, 80, 160, 320, 640, 1280)
BUCKET_LABELS = tuple(str(m) for m in LIMITS_MINUTES) + (f"{LIMITS_MINUTES[-1]}+",)
_LIMITS_SECONDS = tuple(m * 60 for m in LIMITS_MINUTES)
MALFORMED_EXAMPLES = 5
UNKNOWN_DOMAIN = "(no domain)"


@dataclass
class DomainShape:
    """Counts for one destination domain (or for the TOTAL row)."""

    domain: str
    messages: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKET_LABELS))
    oldest_arrival: float | None = None
    oldest_id: str | None = None
    reasons: Counter[Deferral] = field(default_factory=Counter)
    texts: dict[Deferral, str] = field(default_factory=dict)
    mtas: set[Mta] = field(default_factory=set)

    def add(self, msg: QueuedMessage, bucket: int | None) -> None:
        self.messages += msg.messages
        if bucket is not None:
            self.buckets[bucket] += msg.messages
        arrival = msg.arrival
        if arrival is not None and (self.oldest_arrival is None or arrival < self.oldest_arrival):
            self.oldest_arrival = arrival
            self.oldest_id = msg.queue_id
        self.mtas.add(msg.mta)

    def add_reason(self, text: str, weight: int) -> None:
        deferral = classify.classify(text)
        self.reasons[deferral] += weight
        self.texts.setdefault(deferral, text)

    def oldest_age(self, now: float) -> float | None:
        return None if self.oldest_arrival is None else max(0.0, now - self.oldest_arrival)

    @property
    def dominant(self) -> Deferral | None:
        """The most frequent deferral among this domain's recipients (None when none gave a reason)."""
        if not self.reasons:
            return None
        return self.reasons.most_common(1)[0][0]

    @property
    def deferred(self) -> int:
        return sum(self.reasons.values())

    def categories(self) -> Counter[Category]:
        out: Counter[Category] = Counter()
        for deferral, n in self.reasons.items():
            out[deferral.category] += n
        return out


@dataclass
class Shape:
    """The whole queue: TOTAL first, then each domain; malformed input is counted, with examples."""

    now: float
    total: DomainShape = field(default_factory=lambda: DomainShape("TOTAL"))
    domains: dict[str, DomainShape] = field(default_factory=dict)
    records: int = 0
    malformed: int = 0
    malformed_examples: list[Malformed] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        """False when input was given but not one record could be read from it."""
        return self.records > 0 or self.malformed == 0

    def top(self, n: int | None = None) -> list[DomainShape]:
        """Domains by message count, then by age (oldest first); ``n`` None or 0 for all."""
        ordered = sorted(
            self.domains.values(),
            key=lambda d: (-d.messages, d.oldest_arrival if d.oldest_arrival is not None else float("inf")),
        )
        return ordered[:n] if n else ordered


def bucket_of(age_seconds: float) -> int:
    return bisect.bisect_right(_LIMITS_SECONDS, age_seconds)


def build(items: Iterable[Item], *, now: float, queues: Iterable[str] | None = None) -> Shape:
    """Shape a record stream as of ``now`` (epoch seconds), optionally only the named queues."""
    shape = Shape(now)
    wanted = frozenset(queues) if queues else None
    domains = shape.domains
    total = shape.total
    limits = _LIMITS_SECONDS
    bisect_right = bisect.bisect_right
    for item in items:
        if type(item) is Malformed:
            shape.malformed += 1
            if len(shape.malformed_examples) < MALFORMED_EXAMPLES:
                shape.malformed_examples.append(item)
            continue
        msg: QueuedMessage = item  # type: ignore[assignment]
        shape.records += 1
        if wanted is not None and msg.queue_name not in wanted:
            continue
        if msg.messages == 0:
            continue
        arrival = msg.arrival
        bucket = None if arrival is None else bisect_right(limits, now - arrival)
        total.add(msg, bucket)
        seen: set[str] = set()
        for rcpt in msg.recipients:
            name = rcpt.domain or UNKNOWN_DOMAIN
            dom = domains.get(name)
            if dom is None:
                dom = domains[name] = DomainShape(name)
            if name not in seen:
                seen.add(name)
                dom.add(msg, bucket)
            if rcpt.delay_reason:
                weight = msg.messages if msg.messages > 1 else 1
                dom.add_reason(rcpt.delay_reason, weight)
                total.add_reason(rcpt.delay_reason, weight)
        if not msg.recipients:
            dom = domains.get(UNKNOWN_DOMAIN)
            if dom is None:
                dom = domains[UNKNOWN_DOMAIN] = DomainShape(UNKNOWN_DOMAIN)
            dom.add(msg, bucket)
    return shape
