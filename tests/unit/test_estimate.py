"""The estimate's fallback (domain/history.py): each figure from the narrowest group with enough
samples for it, each group's samples reported; and the output excerpt's bound."""

from __future__ import annotations

import json
from datetime import timedelta

from workengine.domain.history import (
    MIN_SAMPLES,
    OUTPUT_EXCERPT_LIMIT,
    GroupSamples,
    SimilarityGroup,
    estimate,
    output_excerpt,
)

TAGS, ORCHESTRATOR, WORKSPACE = list(SimilarityGroup)
S = timedelta(seconds=1)


def group(which: SimilarityGroup, completed: int, finished: int, failed: int = 0) -> GroupSamples:
    timed = completed > 0
    return GroupSamples(
        which, completed, finished, failed, 10 * S if timed else None, 30 * S if timed else None
    )


def test_the_narrowest_group_with_enough_samples_gives_both_figures() -> None:
    found = estimate([group(TAGS, 5, 6, 1), group(ORCHESTRATOR, 50, 60, 10), group(WORKSPACE, 90, 99, 9)])
    assert (found.duration_group, found.duration_samples, found.p50, found.p90) == (TAGS, 5, 10 * S, 30 * S)
    assert (found.failure_group, found.failure_samples, found.failure_share) == (TAGS, 6, 1 / 6)


def test_each_step_falls_back_to_the_next_wider_group() -> None:
    groups = [group(TAGS, 4, 4), group(ORCHESTRATOR, MIN_SAMPLES, 7, 2), group(WORKSPACE, 90, 90)]
    assert estimate(groups).duration_group is ORCHESTRATOR
    assert (
        estimate([group(TAGS, 4, 4), group(ORCHESTRATOR, 4, 4), group(WORKSPACE, 5, 5)]).duration_group
        is WORKSPACE
    )


def test_the_figures_may_come_from_different_groups() -> None:
    # Five failures and no success in the narrow group: a failure share, but no run time.
    found = estimate([group(TAGS, 0, 5, 5), group(ORCHESTRATOR, 3, 8, 5), group(WORKSPACE, 12, 20, 8)])
    assert (found.failure_group, found.failure_share) == (TAGS, 1.0)
    assert (found.duration_group, found.duration_samples) == (WORKSPACE, 12)


def test_too_few_samples_everywhere_leaves_the_figures_unset_but_says_how_few() -> None:
    groups = [group(TAGS, 1, 2), group(ORCHESTRATOR, 2, 3), group(WORKSPACE, 4, 4)]
    found = estimate(groups)
    assert found.duration_group is None and found.p50 is None and found.p90 is None
    assert found.failure_group is None and found.failure_share is None
    assert [(g.completed, g.finished) for g in found.groups] == [(1, 2), (2, 3), (4, 4)]


def test_an_output_excerpt_is_compact_json_cut_to_its_limit() -> None:
    assert output_excerpt({}) == ""
    assert output_excerpt({"b": 1, "a": [1, 2]}) == '{"b":1,"a":[1,2]}'
    long = output_excerpt({"text": "é" * 2000})
    assert len(long) == OUTPUT_EXCERPT_LIMIT and long.endswith("...")
    assert long.startswith(json.dumps({"text": ""}, separators=(",", ":"))[:9])
