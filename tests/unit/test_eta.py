"""The ETA rule (domain/eta.py) over synthetic timelines: steady, stalled, jumping back, 0 % for
long, with and without an estimate. An ETA is never in the past: what remains is never negative."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from workengine.domain.eta import YOUNG_PROGRESS, remaining
from workengine.domain.history import Estimate, GroupSamples, SimilarityGroup

MINUTE = timedelta(minutes=1)


def estimate(p50: timedelta, p90: timedelta) -> Estimate:
    group = GroupSamples(SimilarityGroup.WORKSPACE, completed=20, finished=20, failed=0, p50=p50, p90=p90)
    return Estimate(groups=(group,), duration_group=group.group, p50=p50, p90=p90, duration_samples=20)


TEN_MINUTES = estimate(10 * MINUTE, 20 * MINUTE)


def finish(elapsed: timedelta, progress: int) -> timedelta:
    """When the attempt is expected to finish, measured from its start."""
    left = remaining(elapsed, progress, None)
    assert left is not None
    return elapsed + left


def test_steady_progress_without_history_finishes_when_the_rate_says() -> None:
    # 10 % a minute: at every report, what remains is (100 - p) / 10 minutes.
    for minute in range(1, 10):
        left = remaining(minute * MINUTE, minute * 10, None)
        assert left == (10 - minute) * MINUTE


def test_steady_progress_keeps_the_same_eta() -> None:
    etas = {finish(minute * MINUTE, minute * 10) for minute in range(1, 10)}
    assert etas == {10 * MINUTE}


def test_a_stalled_attempt_sees_its_eta_move_out_with_every_report() -> None:
    finishes = [finish(minute * MINUTE, 40) for minute in (4, 8, 16)]
    assert finishes == sorted(finishes) and len(set(finishes)) == 3
    assert finishes[0] == 10 * MINUTE  # 40 % in 4 minutes: 6 more


def test_progress_that_jumps_back_is_taken_at_its_word() -> None:
    before = remaining(6 * MINUTE, 60, None)
    after = remaining(7 * MINUTE, 30, None)
    assert before == 4 * MINUTE
    assert after is not None and after == 7 * MINUTE * 70 / 30
    assert after > before


def test_zero_percent_with_no_history_has_nothing_to_go_on() -> None:
    assert remaining(timedelta(0), 0, None) is None
    assert remaining(3 * MINUTE, 0, None) is None


def test_zero_percent_follows_the_estimate_then_its_p90_then_nothing() -> None:
    assert remaining(4 * MINUTE, 0, TEN_MINUTES) == 6 * MINUTE  # p50 - elapsed
    assert remaining(12 * MINUTE, 0, TEN_MINUTES) == 8 * MINUTE  # past the p50: p90 - elapsed
    assert remaining(25 * MINUTE, 0, TEN_MINUTES) is None  # past the p90: 0 % for long


def test_young_progress_blends_the_rate_with_the_estimate() -> None:
    # 5 % after 1 minute: rate says 19 minutes, history 9; weight 5/25 on the rate.
    left = remaining(MINUTE, 5, TEN_MINUTES)
    assert left == 19 * MINUTE * 0.2 + 9 * MINUTE * 0.8


def test_from_young_progress_on_the_rate_alone_counts() -> None:
    assert remaining(5 * MINUTE, YOUNG_PROGRESS, TEN_MINUTES) == 15 * MINUTE
    assert remaining(5 * MINUTE, 50, TEN_MINUTES) == 5 * MINUTE


def test_young_progress_past_the_p90_follows_its_rate() -> None:
    assert remaining(30 * MINUTE, 10, TEN_MINUTES) == 270 * MINUTE


def test_an_estimate_without_run_times_counts_as_none() -> None:
    failures_only = Estimate(groups=(), failure_group=SimilarityGroup.WORKSPACE, failure_share=1.0)
    assert remaining(MINUTE, 0, failures_only) is None
    assert remaining(MINUTE, 50, failures_only) == MINUTE


def test_done_means_nothing_left_and_a_clock_behind_the_start_counts_as_no_time() -> None:
    assert remaining(5 * MINUTE, 100, TEN_MINUTES) == timedelta(0)
    assert remaining(-MINUTE, 0, TEN_MINUTES) == 10 * MINUTE


durations = st.timedeltas(min_value=timedelta(seconds=-60), max_value=timedelta(days=3))


@given(
    elapsed=durations,
    progress=st.integers(min_value=-5, max_value=105),
    p50=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1)),
    spread=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1)),
    with_estimate=st.booleans(),
)
def test_what_remains_is_never_negative(
    elapsed: timedelta, progress: int, p50: timedelta, spread: timedelta, with_estimate: bool
) -> None:
    left = remaining(elapsed, progress, estimate(p50, p50 + spread) if with_estimate else None)
    assert left is None or left >= timedelta(0)
