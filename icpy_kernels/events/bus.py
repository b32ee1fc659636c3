"""A small in-process publish/subscribe bus: dotted topics, shell-style wildcard patterns."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from typing import Any

log = logging.getLogger(__name__)

Deliver = Callable[[str, dict[str, Any]], None]


class Subscription:
    """One subscriber's patterns; ``deliver(topic, event)`` must not block (it enqueues)."""

    def __init__(self, bus: EventBus, deliver: Deliver) -> None:
        self.bus = bus
        self.deliver = deliver
        self.patterns: set[str] = set()

    def add(self, patterns: Iterable[str]) -> list[str]:
        self.patterns.update(patterns)
        self.bus._changed()
        return sorted(self.patterns)

    def remove(self, patterns: Iterable[str] | None = None) -> list[str]:
        """Drop the given patterns (all of them when None); returns what is left."""
        if patterns is None:
            self.patterns.clear()
        else:
            self.patterns.difference_update(patterns)
        self.bus._changed()
        return sorted(self.patterns)

    def matches(self, topic: str) -> bool:
        return any(fnmatchcase(topic, p) for p in self.patterns)

    def close(self) -> None:
        self.bus._subscriptions.discard(self)
        self.bus._changed()


class EventBus:
    """Topics are dotted names (``code_execution.update``, ``session.<id>.kernel_status``);
    patterns match them with :func:`fnmatch.fnmatchcase` (``*`` also spans dots).

    Publishing happens on the event loop from the kernel readers, so it is synchronous and
    cheap: the subscribers of a topic are cached until any subscription changes, and
    :meth:`wants` lets a publisher skip building an event nobody will receive.
    """

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._cache: dict[str, list[Subscription]] = {}

    def subscribe(self, deliver: Deliver, patterns: Iterable[str] = ()) -> Subscription:
        sub = Subscription(self, deliver)
        self._subscriptions.add(sub)
        sub.add(patterns)
        return sub

    def _changed(self) -> None:
        self._cache.clear()

    def _subscribers(self, topic: str) -> list[Subscription]:
        subs = self._cache.get(topic)
        if subs is None:
            subs = [s for s in self._subscriptions if s.matches(topic)]
            if len(self._cache) > 4096:  # topics name sessions: bound the cache anyway
                self._cache.clear()
            self._cache[topic] = subs
        return subs

    def wants(self, topic: str) -> bool:
        return bool(self._subscribers(topic))

    def publish(self, topic: str, event: dict[str, Any]) -> int:
        """Deliver to every matching subscriber; returns how many. A failing subscriber is
        logged and skipped: it must not stop the others (or the kernel reader calling us)."""
        subs = self._subscribers(topic)
        for sub in list(subs):
            try:
                sub.deliver(topic, event)
            except Exception:
                log.exception("bus: subscriber failed on %s", topic)
        return len(subs)

    def __len__(self) -> int:
        return len(self._subscriptions)
