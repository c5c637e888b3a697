"""The selection score: priority weight x deadline boost, tie-breaks and index segments."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests import selection_reference as reference
from workengine.domain import scoring
from workengine.domain.model import Priority, Task

NOW = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
ALL_BOOSTS = (scoring.OVERDUE_BOOST, scoring.DUE_TODAY_BOOST, scoring.DUE_SOON_BOOST, scoring.NO_BOOST)


def key(
    priority: Priority,
    due_at: datetime | None,
    *,
    created_at: datetime = CREATED,
    task_id: str = "t",
    now: datetime = NOW,
    timezone: str = "UTC",
) -> tuple[int, int, datetime, int, datetime, str]:
    return reference.sort_key(priority, due_at, created_at, task_id, now, timezone)


def contains(segment: scoring.Segment, due_at: datetime | None) -> bool:
    """Whether the closed range [due_from, due_to] holds due_at; a missing due time is +infinity."""
    if due_at is None:
        return segment.due_to is None
    if segment.due_from is not None and due_at < segment.due_from:
        return False
    return segment.due_to is None or due_at <= segment.due_to


# --- constants -------------------------------------------------------------------------------------


def test_the_boost_and_weight_constants_are_the_specified_ones() -> None:
    assert ALL_BOOSTS == (10, 5, 2, 1)
    assert scoring.SOON_WINDOW.total_seconds() == 72 * 3600
    assert scoring.PRIORITY_WEIGHT == {
        Priority.CRITICAL: 1000,
        Priority.HIGH: 100,
        Priority.MEDIUM: 10,
        Priority.LOW: 1,
    }


# --- deadline buckets, at their exact boundaries ---------------------------------------------------


# NOW is 22:30 UTC, so "today" in UTC ends at 2026-11-26T00:00Z, 90 minutes later.
END_OF_TODAY_UTC = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.mark.parametrize(
    ("due_at", "boost"),
    [
        pytest.param(None, 1, id="no-due-time"),
        pytest.param(NOW - timedelta(days=400), 10, id="long-overdue"),
        pytest.param(NOW - US, 10, id="one-microsecond-overdue"),
        pytest.param(NOW, 5, id="due-exactly-now-is-today-not-overdue"),
        pytest.param(NOW + US, 5, id="just-after-now"),
        pytest.param(END_OF_TODAY_UTC - US, 5, id="last-microsecond-of-today"),
        pytest.param(END_OF_TODAY_UTC, 2, id="first-instant-of-tomorrow-is-not-today"),
        pytest.param(NOW + timedelta(hours=30), 2, id="within-72h"),
        pytest.param(NOW + timedelta(hours=72) - US, 2, id="last-microsecond-of-72h"),
        pytest.param(NOW + timedelta(hours=72), 1, id="exactly-72h-is-not-soon"),
        pytest.param(NOW + timedelta(days=365), 1, id="far-future"),
    ],
)
def test_deadline_boost_buckets_and_boundaries(due_at: datetime | None, boost: int) -> None:
    assert reference.deadline_boost(due_at, NOW, "UTC") == boost


def test_end_of_today_is_the_first_instant_of_tomorrow_in_the_zone() -> None:
    assert scoring.end_of_today(NOW, "UTC") == END_OF_TODAY_UTC
    # 22:30Z is 17:30 in New York (EST, UTC-5): tomorrow starts at 05:00Z.
    assert scoring.end_of_today(NOW, "America/New_York") == datetime(2026, 11, 26, 5, tzinfo=UTC)
    # 22:30Z is already 07:30 on the 26th in Tokyo (UTC+9): tomorrow starts on the 27th, 00:00+09.
    assert scoring.end_of_today(NOW, "Asia/Tokyo") == datetime(2026, 11, 26, 15, tzinfo=UTC)


@pytest.mark.parametrize("timezone", ["UTC", "America/New_York", "Asia/Tokyo", "Pacific/Kiritimati"])
def test_today_ends_exactly_at_local_midnight(timezone: str) -> None:
    end = scoring.end_of_today(NOW, timezone)
    local_end = end.astimezone(ZoneInfo(timezone))
    assert (local_end.hour, local_end.minute, local_end.second, local_end.microsecond) == (0, 0, 0, 0)
    assert local_end.date() == NOW.astimezone(ZoneInfo(timezone)).date() + timedelta(days=1)
    assert reference.deadline_boost(end - US, NOW, timezone) == scoring.DUE_TODAY_BOOST
    assert reference.deadline_boost(end, NOW, timezone) == scoring.DUE_SOON_BOOST


LATE_NOW = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "due_at", "timezone", "boost"),
    [
        # 23:30Z is 18:30 in New York: 00:30Z on the 26th is still "today" there (it ends 05:00Z) ...
        (LATE_NOW, datetime(2026, 11, 26, 0, 30, tzinfo=UTC), "America/New_York", 5),
        # ... but in UTC the day ended at 00:00Z, so it is only "soon".
        (LATE_NOW, datetime(2026, 11, 26, 0, 30, tzinfo=UTC), "UTC", 2),
        # 23:30Z is 08:30 on the 26th in Tokyo (today ends 15:00Z) and 13:30 in Kiritimati (UTC+14,
        # today ends 10:00Z): 12:00Z is "today" in Tokyo only.
        (LATE_NOW, datetime(2026, 11, 26, 0, 30, tzinfo=UTC), "Asia/Tokyo", 5),
        (LATE_NOW, datetime(2026, 11, 26, 0, 30, tzinfo=UTC), "Pacific/Kiritimati", 5),
        (LATE_NOW, datetime(2026, 11, 26, 12, 0, tzinfo=UTC), "Asia/Tokyo", 5),
        (LATE_NOW, datetime(2026, 11, 26, 12, 0, tzinfo=UTC), "Pacific/Kiritimati", 2),
        (LATE_NOW, datetime(2026, 11, 26, 12, 0, tzinfo=UTC), "America/New_York", 2),
        (LATE_NOW, datetime(2026, 11, 26, 12, 0, tzinfo=UTC), "UTC", 2),
        # 09:30Z is 23:30 in Kiritimati, whose day ends at 10:00Z; UTC's day still has 14.5 hours.
        (datetime(2026, 11, 25, 9, 30, tzinfo=UTC), datetime(2026, 11, 25, 10, 30, tzinfo=UTC), "UTC", 5),
        (
            datetime(2026, 11, 25, 9, 30, tzinfo=UTC),
            datetime(2026, 11, 25, 10, 30, tzinfo=UTC),
            "Pacific/Kiritimati",
            2,
        ),
        # The due time's own offset does not matter, only the instant.
        (
            LATE_NOW,
            datetime(2026, 11, 26, 9, 30, tzinfo=ZoneInfo("Asia/Tokyo")),  # 00:30Z
            "America/New_York",
            5,
        ),
    ],
)
def test_today_depends_on_the_orchestrators_timezone(
    now: datetime, due_at: datetime, timezone: str, boost: int
) -> None:
    assert reference.deadline_boost(due_at, now, timezone) == boost


# --- score = weight x boost -----------------------------------------------------------------------


DUE_FOR_BOOST: dict[int, datetime | None] = {
    10: NOW - timedelta(hours=1),
    5: NOW + timedelta(minutes=30),
    2: NOW + timedelta(hours=24),
    1: None,
}


@pytest.mark.parametrize(
    ("priority", "boost", "expected"),
    [
        (Priority.CRITICAL, 10, 10_000),
        (Priority.CRITICAL, 5, 5_000),
        (Priority.CRITICAL, 2, 2_000),
        (Priority.CRITICAL, 1, 1_000),
        (Priority.HIGH, 10, 1_000),
        (Priority.HIGH, 5, 500),
        (Priority.HIGH, 2, 200),
        (Priority.HIGH, 1, 100),
        (Priority.MEDIUM, 10, 100),
        (Priority.MEDIUM, 5, 50),
        (Priority.MEDIUM, 2, 20),
        (Priority.MEDIUM, 1, 10),
        (Priority.LOW, 10, 10),
        (Priority.LOW, 5, 5),
        (Priority.LOW, 2, 2),
        (Priority.LOW, 1, 1),
    ],
)
def test_score_is_weight_times_boost(priority: Priority, boost: int, expected: int) -> None:
    due_at = DUE_FOR_BOOST[boost]
    assert reference.deadline_boost(due_at, NOW, "UTC") == boost
    assert reference.score(priority, due_at, NOW, "UTC") == expected


def test_a_far_due_time_scores_like_no_due_time() -> None:
    far = NOW + timedelta(days=30)
    for priority in Priority:
        assert reference.score(priority, far, NOW, "UTC") == reference.score(priority, None, NOW, "UTC")


# --- sort_key tie-breaks --------------------------------------------------------------------------


def test_higher_score_wins_whatever_the_other_fields() -> None:
    best = key(Priority.HIGH, NOW + timedelta(hours=50), created_at=CREATED + timedelta(days=9), task_id="z")
    worse = key(Priority.HIGH, None, created_at=CREATED, task_id="a")  # 100 < 200
    assert best < worse
    assert key(Priority.CRITICAL, None) < key(Priority.HIGH, NOW + timedelta(minutes=5))  # 1000 > 500


def test_critical_without_due_time_ties_with_high_overdue_and_the_due_one_goes_first() -> None:
    critical_no_due = key(Priority.CRITICAL, None, task_id="a")
    high_overdue = key(Priority.HIGH, NOW - timedelta(days=1), task_id="b")
    assert reference.score(Priority.CRITICAL, None, NOW, "UTC") == 1000
    assert reference.score(Priority.HIGH, NOW - timedelta(days=1), NOW, "UTC") == 1000
    assert high_overdue < critical_no_due
    assert sorted([critical_no_due, high_overdue]) == [high_overdue, critical_no_due]


@pytest.mark.parametrize(
    ("higher", "lower"),
    [
        (Priority.HIGH, Priority.MEDIUM),
        (Priority.MEDIUM, Priority.LOW),
        (Priority.CRITICAL, Priority.HIGH),
    ],
)
def test_equal_scores_across_priorities_put_the_due_task_first(higher: Priority, lower: Priority) -> None:
    # weight(higher) x 1 == weight(lower) x 10: the higher priority is due in 100 h, the lower overdue.
    later = key(higher, NOW + timedelta(hours=100))
    overdue = key(lower, NOW - timedelta(hours=1))
    assert later[0] == overdue[0]
    assert overdue < later


def test_equal_score_earlier_due_first_and_no_due_time_last() -> None:
    due_earlier = key(Priority.MEDIUM, NOW + timedelta(days=5), task_id="c")
    due_later = key(Priority.MEDIUM, NOW + timedelta(days=9), task_id="a")
    no_due = key(Priority.MEDIUM, None, created_at=CREATED - timedelta(days=99), task_id="0")
    assert due_earlier[0] == due_later[0] == no_due[0]
    assert sorted([no_due, due_later, due_earlier]) == [due_earlier, due_later, no_due]


def test_equal_score_and_due_then_higher_priority_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # With the real weights, equal score and equal due imply equal priority, so this rule is only
    # observable with equal weights.
    for priority in Priority:
        monkeypatch.setitem(scoring.PRIORITY_WEIGHT, priority, 7)
    due = NOW + timedelta(hours=5)
    low = key(Priority.LOW, due, created_at=CREATED - timedelta(days=1), task_id="a")
    critical = key(Priority.CRITICAL, due, created_at=CREATED, task_id="z")
    medium = key(Priority.MEDIUM, due, created_at=CREATED, task_id="b")
    assert low[0] == critical[0] == medium[0]
    assert sorted([low, medium, critical]) == [critical, medium, low]
    assert key(Priority.LOW, None) > key(Priority.CRITICAL, None)


def test_equal_score_due_and_priority_then_older_created_first_then_id() -> None:
    due = NOW + timedelta(hours=1)
    newer = key(Priority.LOW, due, created_at=CREATED + timedelta(seconds=1), task_id="a")
    older_b = key(Priority.LOW, due, created_at=CREATED, task_id="b")
    older_a = key(Priority.LOW, due, created_at=CREATED, task_id="a")
    assert sorted([newer, older_b, older_a]) == [older_a, older_b, newer]
    none_newer = key(Priority.LOW, None, created_at=CREATED + timedelta(seconds=1), task_id="a")
    none_older = key(Priority.LOW, None, created_at=CREATED, task_id="b")
    assert none_older < none_newer


def test_identical_inputs_give_identical_keys() -> None:
    assert key(Priority.HIGH, NOW) == key(Priority.HIGH, NOW)
    assert key(Priority.HIGH, None) == key(Priority.HIGH, None)


# --- segments -------------------------------------------------------------------------------------


@pytest.mark.parametrize("timezone", ["UTC", "America/New_York", "Asia/Kathmandu", "Pacific/Kiritimati"])
def test_segments_cover_every_priority_and_bucket_contiguously(timezone: str) -> None:
    segments = scoring.segments(NOW, timezone)
    assert len(segments) == 16
    assert {(s.priority, s.boost) for s in segments} == set(itertools.product(Priority, ALL_BOOSTS))
    for priority in Priority:
        mine = sorted((s for s in segments if s.priority is priority), key=lambda s: -s.boost)
        assert [s.boost for s in mine] == list(ALL_BOOSTS)
        assert mine[0].due_from is None
        assert mine[-1].due_to is None
        for before, after in itertools.pairwise(mine):
            assert before.due_to is not None and after.due_from is not None
            assert before.due_to + scoring.RESOLUTION == after.due_from
        assert mine[1].due_from == NOW
        assert mine[2].due_from == scoring.end_of_today(NOW, timezone)
        assert mine[3].due_from == NOW + scoring.SOON_WINDOW
        for segment in mine:
            assert segment.score == scoring.PRIORITY_WEIGHT[priority] * segment.boost


ZONES = [
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Santiago",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
]

# Instants around daylight-saving changes, where "today" is 23 or 25 hours long.
DST_NOWS = [
    datetime(2026, 3, 8, 6, 59, 59, 999_999, tzinfo=UTC),  # New York springs forward at 07:00Z
    datetime(2026, 3, 7, 12, 0, tzinfo=UTC),
    datetime(2026, 10, 31, 23, 0, tzinfo=UTC),  # the evening before New York falls back
    datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
    datetime(2026, 3, 28, 23, 30, tzinfo=UTC),  # Europe changes on 2026-03-29 01:00Z
    datetime(2026, 10, 24, 22, 0, tzinfo=UTC),
    datetime(2026, 4, 4, 14, 0, tzinfo=UTC),  # Lord Howe ends DST 2026-04-05 (30 minutes)
    datetime(2026, 4, 4, 20, 0, tzinfo=UTC),  # Santiago ends DST on the night of 2026-04-04
    datetime(2026, 9, 5, 20, 0, tzinfo=UTC),
    datetime(2011, 12, 29, 9, 0, tzinfo=UTC),  # Apia skipped 2011-12-30 entirely
]


def random_now(rng: random.Random) -> datetime:
    if rng.random() < 0.2:
        return rng.choice(DST_NOWS) + timedelta(minutes=rng.randint(-90, 90))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return start + timedelta(seconds=rng.randrange(3 * 365 * 86400), microseconds=rng.randrange(1_000_000))


def random_due(rng: random.Random, now: datetime, timezone: str) -> datetime | None:
    roll = rng.random()
    if roll < 0.05:
        return None
    if roll < 0.35:
        end = scoring.end_of_today(now, timezone)
        soon = now + scoring.SOON_WINDOW
        return rng.choice([now, now - US, now + US, end, end - US, end + US, soon, soon - US, soon + US])
    offset = timedelta(seconds=rng.randrange(-4 * 86400, 6 * 86400), microseconds=rng.randrange(1_000_000))
    return now + offset


@pytest.mark.parametrize("timezone", ZONES)
def test_exactly_one_segment_of_the_priority_holds_each_due_time(timezone: str) -> None:
    rng = random.Random(f"segments-{timezone}")
    seen_boosts: set[int] = set()
    for _ in range(400):
        now = random_now(rng)
        due_at = random_due(rng, now, timezone)
        priority = rng.choice(list(Priority))
        segments = scoring.segments(now, timezone)
        holding = [s for s in segments if s.priority is priority and contains(s, due_at)]
        assert len(holding) == 1, (now, due_at, timezone, holding)
        expected = reference.deadline_boost(due_at, now, timezone)
        assert holding[0].boost == expected, (now, due_at, timezone)
        assert holding[0].score == reference.score(priority, due_at, now, timezone)
        seen_boosts.add(expected)
    assert seen_boosts == set(ALL_BOOSTS)


def test_today_is_not_over_during_a_repeated_hour_before_midnight() -> None:
    # 2010-11-07 02:31Z: St. John's went from 00:01 NDT back to 23:01 NST on the 6th.
    now = datetime(2010, 11, 7, 2, 45, tzinfo=UTC)  # 23:15 NST on 2010-11-06, the second time round
    timezone = "America/St_Johns"
    assert now.astimezone(ZoneInfo(timezone)).date().isoformat() == "2010-11-06"
    assert scoring.end_of_today(now, timezone) > now
    assert reference.deadline_boost(now + timedelta(minutes=10), now, timezone) == scoring.DUE_TODAY_BOOST
    overdue = now - timedelta(minutes=5)
    segments = scoring.segments(now, timezone)
    assert len([s for s in segments if s.priority is Priority.LOW and contains(s, overdue)]) == 1


def test_a_missing_due_time_belongs_to_the_unbounded_last_segment() -> None:
    for segment in scoring.segments(NOW, "UTC"):
        assert contains(segment, None) == (segment.boost == scoring.NO_BOOST)
        assert (segment.due_to is None) == (segment.boost == scoring.NO_BOOST)


@pytest.mark.parametrize(
    ("min_priority", "max_priority", "expected"),
    [
        (None, None, set(Priority)),
        (Priority.HIGH, None, {Priority.HIGH, Priority.CRITICAL}),
        (None, Priority.MEDIUM, {Priority.LOW, Priority.MEDIUM}),
        (Priority.MEDIUM, Priority.HIGH, {Priority.MEDIUM, Priority.HIGH}),
        (Priority.MEDIUM, Priority.MEDIUM, {Priority.MEDIUM}),
        (Priority.LOW, Priority.CRITICAL, set(Priority)),
        (Priority.CRITICAL, None, {Priority.CRITICAL}),
        (None, Priority.LOW, {Priority.LOW}),
        (Priority.HIGH, Priority.MEDIUM, set()),
    ],
)
def test_segments_honour_the_priority_bounds(
    min_priority: Priority | None, max_priority: Priority | None, expected: set[Priority]
) -> None:
    segments = scoring.segments(NOW, "UTC", min_priority, max_priority)
    assert {s.priority for s in segments} == expected
    assert len(segments) == 4 * len(expected)


# --- the best task is found among all candidates, not the first 50 --------------------------------


def candidate(index: int, priority: Priority, due_at: datetime | None) -> Task:
    return Task(
        id=f"t{index:03d}",
        orchestrator_id="ada",
        workspace_id="ws",
        title=f"task {index}",
        priority=priority,
        due_at=due_at,
        created_at=CREATED + timedelta(minutes=index),
    )


def task_key(task: Task) -> tuple[int, int, datetime, int, datetime, str]:
    assert task.created_at is not None
    return reference.sort_key(task.priority, task.due_at, task.created_at, task.id, NOW, "UTC")


def test_the_best_of_200_candidates_is_found_beyond_the_first_50() -> None:
    rng = random.Random("beyond-fifty")
    # Candidates in insertion (creation) order; the ordinary ones score at most 100.
    ordinary_choices: list[tuple[Priority, datetime | None]] = [
        (Priority.LOW, None),
        (Priority.LOW, NOW - timedelta(hours=3)),
        (Priority.MEDIUM, None),
        (Priority.MEDIUM, NOW + timedelta(hours=30)),
        (Priority.MEDIUM, NOW - timedelta(hours=2)),
        (Priority.HIGH, None),
        (Priority.HIGH, NOW + timedelta(hours=100)),
    ]
    candidates = [candidate(i, *rng.choice(ordinary_choices)) for i in range(200)]
    candidates[150] = candidate(150, Priority.CRITICAL, NOW - timedelta(minutes=5))  # 10 000

    best = min(candidates, key=task_key)
    assert best.id == "t150"
    assert candidates.index(best) == 150
    assert reference.score(best.priority, best.due_at, NOW, "UTC") == 10_000

    # The original design scored only the first 50 candidates: it would have picked another task.
    first_fifty_pick = min(candidates[:50], key=task_key)
    assert first_fifty_pick.id != "t150"
    assert reference.score(first_fifty_pick.priority, first_fifty_pick.due_at, NOW, "UTC") <= 100
    assert task_key(best) < task_key(first_fifty_pick)

    # The result of a full scan does not depend on the order the candidates are seen in.
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    assert min(shuffled, key=task_key).id == "t150"
