"""Settings written as text (a flag's, a variable's) and back: durations, sizes, counts and
switches. A parser raises ValueError saying what is wrong. Also the time left until an ETA, in
the short form a person reads next to a progress bar."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}
_SIZE = re.compile(r"^\s*(\d+)\s*(|b|kib|mib|gib|k|m|g)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
}


# Parsers: text (a flag's or a variable's) -> value; ValueError says what is wrong.


def parse_duration(text: str) -> timedelta:
    """'90' or '90s', '15m', '12h', '7d'."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 12h or 7d")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def positive_duration(text: str) -> timedelta:
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError(f"{text!r} is not positive")
    return value


def positive_seconds(text: str) -> float:
    return positive_duration(text).total_seconds()


def seconds(text: str) -> float:
    """A duration of 0 or more, in seconds."""
    return parse_duration(text).total_seconds()


def parse_size(text: str) -> int:
    """'8388608', '512KiB', '8MiB' (K/M/G are binary too)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size like 4194304, 512KiB or 8MiB")
    return int(match[1]) * _SIZE_UNITS[match[2].lower()]


def parse_count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def parse_switch(text: str) -> bool:
    """1 is on, 0 is off; anything else is refused rather than guessed (`true` is not 1)."""
    if text.strip() not in ("0", "1"):
        raise ValueError(f"{text!r} is neither 1 (on) nor 0 (off)")
    return text.strip() == "1"


def show_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, length in _UNIT_SECONDS.items():
        if seconds >= length and seconds % length == 0:
            return f"{seconds / length:g}{unit}"
    return f"{seconds:g}s"


def show_size(value: int) -> str:
    for unit, length in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= length and value % length == 0:
            return f"{value // length}{unit}"
    return str(value)


def show_time_left(remaining: timedelta) -> str:
    """An ETA's distance as a person reads it next to a progress bar: "~40 s left",
    "~3 min left", "~2 h 5 min left", "~1 d 4 h left". Rounded half up to the unit shown (an
    estimate claims no more), and never negative: an ETA already passed is "~0 s left"."""
    total = max(remaining.total_seconds(), 0.0)
    if _half_up(total) < 60:
        return f"~{_half_up(total)} s left"
    minutes = _half_up(total / 60)
    if minutes < 60:
        return f"~{minutes} min left"
    if minutes < 24 * 60:
        hours, minutes = divmod(minutes, 60)
        return f"~{hours} h {minutes} min left" if minutes else f"~{hours} h left"
    days, hours = divmod(_half_up(total / 3600), 24)
    return f"~{days} d {hours} h left" if hours else f"~{days} d left"


def _half_up(value: float) -> int:
    # round() rounds half to even (2.5 -> 2): a countdown would then stall and skip.
    return math.floor(value + 0.5)
