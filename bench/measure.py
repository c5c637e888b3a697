"""Figures of the suite: one row per measured case, medians over runs, and the table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(len(ordered) * fraction) - 1)]


@dataclass(frozen=True)
class Figure:
    """One measured case: the engine's figure beside its reference, and the target."""

    benchmark: str
    case: str
    engine: float
    unit: str
    reference: float | None = None  # same unit as `engine`
    reference_name: str = ""
    # "ratio>=0.5": engine/reference at least 0.5 ("ratio<=2": at most 2); "<=5": engine at
    # most 5 (its unit); ">=": at least.
    target: str = ""
    # A format string over `extras`: secondary figures, medianed over runs like the others.
    notes: str = ""
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.reference is None or not self.reference:
            return None
        return self.engine / self.reference

    @property
    def met(self) -> bool | None:
        if not self.target:
            return None
        if self.target.startswith("ratio>="):
            return self.ratio is not None and self.ratio >= float(self.target[7:])
        if self.target.startswith("ratio<="):
            return self.ratio is not None and self.ratio <= float(self.target[7:])
        if self.target.startswith("<="):
            return self.engine <= float(self.target[2:])
        if self.target.startswith(">="):
            return self.engine >= float(self.target[2:])
        raise ValueError(f"unknown target {self.target}")


def median_figures(runs: Sequence[Sequence[Figure]]) -> list[Figure]:
    """Each figure's median over the runs, extras included (by position: every run measures
    the same cases)."""
    merged = []
    for same in zip(*runs, strict=True):
        references = [f.reference for f in same if f.reference is not None]
        merged.append(
            replace(
                same[0],
                engine=statistics.median(f.engine for f in same),
                reference=statistics.median(references) if references else None,
                extras={name: statistics.median(f.extras[name] for f in same) for name in same[0].extras},
            )
        )
    return merged


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(figures: Sequence[Figure]) -> str:
    lines = [
        "| benchmark | case | engine | reference | ratio | target | met | notes |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for f in figures:
        reference = f"{_number(f.reference)} {f.unit} ({f.reference_name})" if f.reference is not None else ""
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else ""
        met = {None: "", True: "met", False: "**missed**"}[f.met]
        target = f.target.replace(">=", " ≥ ").replace("<=", " ≤ ").strip()
        if f.target and not f.target.startswith("ratio"):
            target += f" {f.unit}"
        lines.append(
            f"| {f.benchmark} | {f.case} | {_number(f.engine)} {f.unit} | {reference} | {ratio} "
            f"| {target} | {met} | {f.notes.format(**f.extras)} |"
        )
    return "\n".join(lines)
