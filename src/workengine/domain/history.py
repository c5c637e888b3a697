"""What past executions teach a task's context: the history it recalls and the estimate it
carries (docs/history.md). Pure rules; the store reads the samples, bounded by WINDOW."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from workengine.domain.model import AttemptOutcome, JsonObject

DEFAULT_HISTORY_LIMIT = 5
MAX_HISTORY_LIMIT = 50
# A group's most recent attempts read for the estimate, whatever their outcome: the cost of an
# estimate stays flat however long the history grows, and old executions age out.
WINDOW = 100
# Fewer samples than this and a group is passed over for a wider one.
MIN_SAMPLES = 5
OUTPUT_EXCERPT_LIMIT = 500
MAX_LESSONS = 10
MAX_LESSON_LENGTH = 1_000


class PastExecutionSource(enum.StrEnum):
    SAME_TASK = "SAME_TASK"
    SIMILAR_TASK = "SIMILAR_TASK"
    WORKSPACE = "WORKSPACE"


class SimilarityGroup(enum.StrEnum):
    """Narrowest first: each widens the one before."""

    ORCHESTRATOR_WORKSPACE_TAGS = "ORCHESTRATOR_WORKSPACE_TAGS"
    ORCHESTRATOR_WORKSPACE = "ORCHESTRATOR_WORKSPACE"
    WORKSPACE = "WORKSPACE"


FAILED_OUTCOMES = frozenset({AttemptOutcome.FAILED, AttemptOutcome.LEASE_EXPIRED})


@dataclass(frozen=True)
class PastExecution:
    source: PastExecutionSource
    task_id: str
    title: str
    orchestrator_id: str
    attempt: int
    identity: str
    outcome: AttemptOutcome
    started_at: datetime
    ended_at: datetime
    error: str = ""
    output_excerpt: str = ""
    lessons: tuple[str, ...] = ()

    @property
    def duration(self) -> timedelta:
        return max(self.ended_at - self.started_at, timedelta(0))


@dataclass(frozen=True)
class GroupSamples:
    """What one group's window offered: run times of its COMPLETED attempts (p50, p90, None
    without any) and how many attempts COMPLETED, finished (completed or failed) and failed."""

    group: SimilarityGroup
    completed: int
    finished: int
    failed: int
    p50: timedelta | None = None
    p90: timedelta | None = None


@dataclass(frozen=True)
class Estimate:
    """Each figure from the narrowest group with at least MIN_SAMPLES samples for it; the
    figure's group is None (and the figure unset) when no group has."""

    groups: tuple[GroupSamples, ...]
    duration_group: SimilarityGroup | None = None
    p50: timedelta | None = None
    p90: timedelta | None = None
    duration_samples: int = 0
    failure_group: SimilarityGroup | None = None
    failure_share: float | None = None
    failure_samples: int = 0


@dataclass(frozen=True)
class Memory:
    """What a context recalls: the history, best first, and the estimate."""

    history: tuple[PastExecution, ...]
    estimate: Estimate


def estimate(groups: Sequence[GroupSamples]) -> Estimate:
    """`groups` narrowest first (SimilarityGroup's order)."""
    timed = next((g for g in groups if g.completed >= MIN_SAMPLES and g.p50 is not None), None)
    counted = next((g for g in groups if g.finished >= MIN_SAMPLES), None)
    return Estimate(
        groups=tuple(groups),
        duration_group=timed.group if timed else None,
        p50=timed.p50 if timed else None,
        p90=timed.p90 if timed else None,
        duration_samples=timed.completed if timed else 0,
        failure_group=counted.group if counted else None,
        failure_share=counted.failed / counted.finished if counted else None,
        failure_samples=counted.finished if counted else 0,
    )


def output_excerpt(output: JsonObject) -> str:
    """The start of a result's output as compact JSON, cut to OUTPUT_EXCERPT_LIMIT characters
    (ending with "..." when cut); empty for no output."""
    if not output:
        return ""
    text = json.dumps(output, separators=(",", ":"), ensure_ascii=False)
    if len(text) <= OUTPUT_EXCERPT_LIMIT:
        return text
    return text[: OUTPUT_EXCERPT_LIMIT - 3] + "..."
