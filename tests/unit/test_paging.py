"""Opaque keyset page tokens: round trip, binding to filters, and refusal of anything forged."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from workengine.domain.errors import InvalidArgument
from workengine.domain.model import TaskFilter, TaskStatus
from workengine.engine import paging

CREATED = datetime(2026, 11, 25, 22, 30, 15, 123_456, tzinfo=UTC)
FILTERS = TaskFilter(orchestrator_id="ada", statuses=(TaskStatus.TODO, TaskStatus.BLOCKED))


def b64(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode()


def refused(token: str, filters: object = FILTERS) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as raised:
        paging.decode(token, filters)
    assert raised.value.field == "page_token"
    return raised.value


def test_a_token_round_trips() -> None:
    token = paging.encode(CREATED, "task-7", FILTERS)
    assert paging.decode(token, FILTERS) == (CREATED, "task-7")


def test_the_offset_and_microseconds_survive_the_round_trip() -> None:
    created = datetime(2026, 3, 8, 1, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-5)))
    decoded = paging.decode(paging.encode(created, "x", FILTERS), FILTERS)
    assert decoded is not None
    assert decoded[0] == created
    assert decoded[0].utcoffset() == timedelta(hours=-5)
    assert decoded[0].microsecond == 999_999


def test_an_equal_filter_object_accepts_the_token() -> None:
    token = paging.encode(CREATED, "t", FILTERS)
    same = TaskFilter(orchestrator_id="ada", statuses=(TaskStatus.TODO, TaskStatus.BLOCKED))
    assert paging.decode(token, same) == (CREATED, "t")
    assert paging.decode(paging.encode(CREATED, "o", ("orchestrators", None)), ("orchestrators", None)) == (
        CREATED,
        "o",
    )


def test_an_empty_token_means_the_first_page() -> None:
    assert paging.decode("", FILTERS) is None


def test_tokens_are_url_safe_and_opaque() -> None:
    token = paging.encode(CREATED, "a" * 100 + "?>>>", FILTERS)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
    assert "ada" not in token


def test_different_positions_give_different_tokens() -> None:
    assert paging.encode(CREATED, "a", FILTERS) != paging.encode(CREATED, "b", FILTERS)
    assert paging.encode(CREATED, "a", FILTERS) != paging.encode(
        CREATED + timedelta(microseconds=1), "a", FILTERS
    )


@pytest.mark.parametrize(
    "other",
    [
        TaskFilter(orchestrator_id="bob", statuses=(TaskStatus.TODO, TaskStatus.BLOCKED)),
        TaskFilter(orchestrator_id="ada", statuses=(TaskStatus.TODO,)),
        TaskFilter(orchestrator_id="ada", statuses=(TaskStatus.TODO, TaskStatus.BLOCKED), tag="x"),
        ("orchestrators", None),
    ],
)
def test_a_token_for_other_filters_is_refused(other: object) -> None:
    token = paging.encode(CREATED, "t", FILTERS)
    assert "different filters" in refused(token, other).message


def digest() -> str:
    """The filter digest a genuine token for FILTERS carries."""
    _, _, value = json.loads(base64.urlsafe_b64decode(paging.encode(CREATED, "t", FILTERS)))
    assert isinstance(value, str)
    return value


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("!!!", id="not-base64"),
        pytest.param("abc", id="bad-padding"),
        pytest.param("é", id="non-ascii"),
        pytest.param(b64(b"\xff\xfe\xfd"), id="not-utf8"),
        pytest.param(b64(b"not json"), id="not-json"),
        pytest.param(b64(b"null"), id="json-null"),
        pytest.param(b64(b"42"), id="json-number"),
        pytest.param(b64(b'{"a": 1}'), id="json-object"),
        pytest.param(b64(b"[1, 2]"), id="too-short"),
        pytest.param(b64(b'["2026-01-01T00:00:00+00:00", "t", "d", "extra"]'), id="too-long"),
        pytest.param(b64(json.dumps(["yesterday", "t", "d"]).encode()), id="bad-datetime"),
        pytest.param(b64(json.dumps([20260101, "t", "d"]).encode()), id="number-datetime"),
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    refused(token)


def test_a_forged_token_with_a_good_digest_but_bad_datetime_is_refused() -> None:
    forged = b64(json.dumps(["not a time", "t", digest()]).encode())
    assert "not a token this server issued" in refused(forged).message


def test_a_forged_token_with_another_digest_is_refused() -> None:
    forged = b64(json.dumps([CREATED.isoformat(), "t", "0" * 16]).encode())
    assert "different filters" in refused(forged).message


def test_a_deeply_nested_token_is_refused_as_invalid() -> None:
    refused(b64(b"[" * 100_000))
