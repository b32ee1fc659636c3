"""The publish/subscribe bus: wildcard topics, caching, failing subscribers, unsubscribe."""

from __future__ import annotations

from icpy_kernels.events.bus import EventBus


def collector():
    got: list[tuple[str, dict]] = []
    return got, lambda topic, event: got.append((topic, event))


def test_patterns_match_with_shell_wildcards():
    bus = EventBus()
    got, deliver = collector()
    bus.subscribe(deliver, ["code_execution.*"])
    assert bus.publish("code_execution.update", {"n": 1}) == 1
    assert bus.publish("code_execution.completed", {"n": 2}) == 1
    assert bus.publish("session.s1.kernel_status", {"n": 3}) == 0
    assert [t for t, _ in got] == ["code_execution.update", "code_execution.completed"]


def test_star_spans_dots_and_exact_topics_match():
    bus = EventBus()
    got, deliver = collector()
    bus.subscribe(deliver, ["session.*.kernel_status", "code_execution.started"])
    bus.publish("session.a.b.kernel_status", {})  # session ids may hold dots
    bus.publish("session.x.shutdown", {})
    bus.publish("code_execution.started", {})
    bus.publish("code_execution.started.extra", {})
    assert [t for t, _ in got] == ["session.a.b.kernel_status", "code_execution.started"]


def test_question_mark_and_classes():
    bus = EventBus()
    got, deliver = collector()
    bus.subscribe(deliver, ["session.s?.shutdown", "session.[ab]*.restarted"])
    for topic in ("session.s1.shutdown", "session.s10.shutdown", "session.abc.restarted",
                  "session.cde.restarted"):
        bus.publish(topic, {})
    assert [t for t, _ in got] == ["session.s1.shutdown", "session.abc.restarted"]


def test_one_event_reaches_each_subscriber_once():
    bus = EventBus()
    got, deliver = collector()
    sub = bus.subscribe(deliver, ["code_execution.*"])
    sub.add(["code_execution.update", "*"])  # overlapping patterns: still one delivery
    other, deliver2 = collector()
    bus.subscribe(deliver2, ["*.update"])
    assert bus.publish("code_execution.update", {"x": 1}) == 2
    assert len(got) == 1 and len(other) == 1


def test_unsubscribe_and_the_cache_follow_changes():
    bus = EventBus()
    got, deliver = collector()
    sub = bus.subscribe(deliver, ["a.*"])
    assert bus.wants("a.b")
    assert sub.remove(["a.*"]) == []
    assert not bus.wants("a.b")
    assert bus.publish("a.b", {}) == 0
    sub.add(["a.*", "b.*"])
    assert bus.wants("a.b") and bus.wants("b.c")
    assert sub.remove() == []  # None: everything
    assert not bus.wants("b.c")
    sub.add(["c"])
    sub.close()
    assert len(bus) == 0 and not bus.wants("c")
    assert got == []


def test_a_failing_subscriber_does_not_stop_the_others():
    bus = EventBus()
    got, deliver = collector()

    def broken(topic, event):
        raise RuntimeError("boom")

    bus.subscribe(broken, ["t"])
    bus.subscribe(deliver, ["t"])
    assert bus.publish("t", {"ok": True}) == 2
    assert got == [("t", {"ok": True})]


def test_a_subscriber_may_unsubscribe_while_being_delivered_to():
    bus = EventBus()
    seen = []
    holder = {}

    def once(topic, event):
        seen.append(event)
        holder["sub"].remove()

    holder["sub"] = bus.subscribe(once, ["t"])
    bus.publish("t", {"n": 1})
    bus.publish("t", {"n": 2})
    assert seen == [{"n": 1}]
