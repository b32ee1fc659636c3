"""A small in-process publish/subscribe bus: dotted topics, shell-style wildcard patterns."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from fnmatch import translate
from typing import Any

from ..errors import CapacityError, ValidationError

log = logging.getLogger(__name__)

Deliver = Callable[[str, dict[str, Any]], None]
WILDCARD = re.compile(r"[*?\[]")
CACHE_TOPICS = 1024  # topics name sessions, so they come and go: the oldest are forgotten


class Matcher:
    """Patterns compiled so that matching a topic costs about the same for 1 or 256 of them.

    ``fnmatchcase`` per pattern cost a Python call each (and past 32768 patterns a regex
    compile each, its cache thrashing). Here literal patterns are a set; wildcard ones are
    grouped by their literal prefix (the text before the first wildcard), each group one
    compiled alternation, so a topic is tested only against groups whose prefix it starts
    with. Groups are recompiled only when their own patterns change.
    """

    def __init__(self) -> None:
        self.literals: set[str] = set()
        self._groups: dict[str, set[str]] = {}
        self._compiled: dict[str, Callable[[str], Any]] = {}
        self._lengths: list[int] = []

    def update(self, added: Iterable[str] = (), removed: Iterable[str] = ()) -> None:
        touched: set[str] = set()
        for pattern, adding in [*((p, True) for p in added), *((p, False) for p in removed)]:
            wild = WILDCARD.search(pattern)
            if wild is None:
                (self.literals.add if adding else self.literals.discard)(pattern)
                continue
            prefix = pattern[:wild.start()]
            group = self._groups.setdefault(prefix, set())
            (group.add if adding else group.discard)(pattern)
            touched.add(prefix)
        for prefix in touched:
            group = self._groups.get(prefix)
            if group:
                alternatives = "|".join(f"(?:{translate(p)})" for p in sorted(group))
                self._compiled[prefix] = re.compile(alternatives).match
            else:
                self._groups.pop(prefix, None)
                self._compiled.pop(prefix, None)
        self._lengths = sorted({len(prefix) for prefix in self._groups})

    def __call__(self, topic: str) -> bool:
        if topic in self.literals:
            return True
        for length in self._lengths:
            if length > len(topic):
                break
            match = self._compiled.get(topic[:length])
            if match is not None and match(topic):
                return True
        return False


class Subscription:
    """One subscriber's patterns; ``deliver(topic, event)`` must not block (it enqueues).

    ``owner`` (a connection id) groups subscriptions for the per-connection pattern cap: a
    connection's native and JSON-RPC subscriptions share it.
    """

    def __init__(self, bus: EventBus, deliver: Deliver, owner: str | None = None) -> None:
        self.bus = bus
        self.deliver = deliver
        self.owner = owner
        self.patterns: set[str] = set()
        self.matches = Matcher()

    def add(self, patterns: Iterable[str]) -> list[str]:
        """Raises ``ValidationError`` (``field: topics``) past the per-connection cap and
        ``CapacityError`` past the server-wide one; nothing is added then."""
        new = [p for p in dict.fromkeys(patterns) if p not in self.patterns]
        if new:
            self.bus._admit(self, len(new))
            self.patterns.update(new)
            self.matches.update(added=new)
            self.bus._added(self, new)
        return sorted(self.patterns)

    def remove(self, patterns: Iterable[str] | None = None) -> list[str]:
        """Drop the given patterns (all of them when None); returns what is left."""
        gone = set(self.patterns) if patterns is None else self.patterns.intersection(patterns)
        if gone:
            self.patterns.difference_update(gone)
            self.matches.update(removed=gone)
            self.bus._removed(self, len(gone))
        return sorted(self.patterns)

    def close(self) -> None:
        self.remove()
        self.bus._subscriptions.discard(self)


class EventBus:
    """Topics are dotted names (``code_execution.update``, ``session.<id>.kernel_status``);
    patterns match them as :func:`fnmatch.fnmatchcase` would (``*`` also spans dots).

    Publishing happens on the event loop from the kernel readers, so it is synchronous and
    cheap: the subscribers of a topic are cached, and :meth:`wants` lets a publisher skip
    building an event nobody will receive. A subscription's change updates the cache for that
    subscription alone (its new patterns against the cached topics, or the topics it was in
    against what it has left), never throwing the cache away: one client changing its
    patterns over and over costs the others nothing.

    Patterns are capped (``max_per_owner`` per connection, ``max_total`` on the server), so
    matching an uncached topic is bounded whatever clients send.
    """

    def __init__(self, max_per_owner: int = 256, max_total: int = 4096) -> None:
        self.max_per_owner = max_per_owner
        self.max_total = max_total
        self.total = 0  # patterns held by every subscription together
        self._subscriptions: set[Subscription] = set()
        self._cache: dict[str, set[Subscription]] = {}

    def subscribe(self, deliver: Deliver, patterns: Iterable[str] = (), owner: str | None = None) -> Subscription:
        patterns = list(dict.fromkeys(patterns))
        sub = Subscription(self, deliver, owner)
        self._admit(sub, len(patterns))  # a refused subscribe leaves nothing behind
        self._subscriptions.add(sub)
        sub.add(patterns)
        return sub

    # -- bookkeeping, called by Subscription ----------------------------------------------
    def _admit(self, sub: Subscription, more: int) -> None:
        held = len(sub.patterns) if sub.owner is None else sum(
            len(s.patterns) for s in self._subscriptions if s.owner == sub.owner and s is not sub
        ) + len(sub.patterns)
        if held + more > self.max_per_owner:
            raise ValidationError(
                f"A connection may subscribe to at most {self.max_per_owner} topic patterns "
                f"({held} already, {more} more asked)", field="topics", limit=self.max_per_owner)
        if self.total + more > self.max_total:
            raise CapacityError(
                f"The server already holds its most topic patterns ({self.max_total}); "
                "unsubscribe others or try later", limit=self.max_total)

    def _added(self, sub: Subscription, patterns: list[str]) -> None:
        self.total += len(patterns)
        fresh = Matcher()
        fresh.update(added=patterns)
        for topic, subs in self._cache.items():
            if sub not in subs and fresh(topic):
                subs.add(sub)

    def _removed(self, sub: Subscription, count: int) -> None:
        self.total -= count
        for topic, subs in self._cache.items():
            if sub in subs and not sub.matches(topic):
                subs.discard(sub)

    def _subscribers(self, topic: str) -> set[Subscription]:
        subs = self._cache.get(topic)
        if subs is None:
            subs = {s for s in self._subscriptions if s.patterns and s.matches(topic)}
            if len(self._cache) >= CACHE_TOPICS:
                del self._cache[next(iter(self._cache))]
            self._cache[topic] = subs
        return subs

    def wants(self, topic: str) -> bool:
        return bool(self._subscribers(topic))

    def publish(self, topic: str, event: dict[str, Any]) -> int:
        """Deliver to every matching subscriber; returns how many. A failing subscriber is
        logged and skipped: it must not stop the others (or the kernel reader calling us)."""
        subs = list(self._subscribers(topic))
        for sub in subs:
            try:
                sub.deliver(topic, event)
            except Exception:
                log.exception("bus: subscriber failed on %s", topic)
        return len(subs)

    def __len__(self) -> int:
        return len(self._subscriptions)
