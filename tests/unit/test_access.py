"""The pure access rules: tokens, principals, what an orchestrator token may touch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workengine.domain import access
from workengine.domain.access import ADMIN, StoredToken, orchestrator_principal
from workengine.domain.errors import PermissionDenied, Unauthenticated

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ADA = orchestrator_principal("ada")


def test_new_tokens_are_prefixed_random_and_hash_to_64_hex_digits() -> None:
    tokens = {access.new_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert token.startswith("wet_") and len(token) >= 40
        digest = access.token_hash(token)
        assert len(digest) == 64 and int(digest, 16) >= 0
        assert token not in digest


def test_same_secret_compares_whole_values() -> None:
    assert access.same_secret("a-long-admin-token", "a-long-admin-token")
    assert not access.same_secret("a-long-admin-token", "a-long-admin-tokeN")
    assert not access.same_secret("a-long-admin-token", "a-long-admin-token-and-more")
    assert not access.same_secret("", "a-long-admin-token")


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer wet_abc", "wet_abc"), ("bearer wet_abc", "wet_abc"), ("BEARER \twet_abc ", "wet_abc")],
)
def test_bearer_token_is_read_from_the_authorization_header(header: str, token: str) -> None:
    assert access.bearer_token([header]) == token


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ([], "missing"),
        (["wet_abc"], "malformed"),
        (["Basic dXNlcjpwYXNz"], "malformed"),
        (["Bearer"], "malformed"),
        (["Bearer "], "malformed"),
        (["Bearer a b"], "malformed"),
        (["Bearer " + "x" * 600], "malformed token"),
        (["Bearer t\u00e9st"], "malformed token"),
        (["Bearer a", "Bearer b"], "more than once"),
    ],
)
def test_a_missing_or_malformed_header_is_unauthenticated(values: list[str], problem: str) -> None:
    with pytest.raises(Unauthenticated, match=problem) as caught:
        access.bearer_token(values)
    assert caught.value.message.startswith("authorization: ")


def test_a_stored_token_works_until_it_is_revoked_or_expires() -> None:
    alive = StoredToken("ada", expires_at=NOW + timedelta(seconds=1), revoked_at=NOW + timedelta(hours=1))
    assert access.check_stored_token(alive, NOW) == ADA
    assert access.check_stored_token(StoredToken("ada", None, None), NOW) == ADA
    with pytest.raises(Unauthenticated, match="unknown token"):
        access.check_stored_token(None, NOW)
    with pytest.raises(Unauthenticated, match="token expired"):
        access.check_stored_token(StoredToken("ada", NOW, None), NOW)
    with pytest.raises(Unauthenticated, match="token revoked"):
        access.check_stored_token(StoredToken("ada", None, NOW - timedelta(seconds=1)), NOW)


def test_principal_names_never_hold_a_token() -> None:
    assert ADMIN.name == "admin" and ADMIN.is_admin
    assert ADA.name == "orchestrator ada" and not ADA.is_admin


def test_an_orchestrator_acts_on_itself_and_its_own_tasks_only() -> None:
    access.allow_orchestrator(ADMIN, "bob")
    access.allow_task(ADMIN, "bob")
    access.allow_orchestrator(ADA, "ada")
    access.allow_task(ADA, "ada")
    access.allow_task(ADA, None)  # no such task: the engine answers NOT_FOUND
    access.allow_orchestrator(ADA, "")  # names no orchestrator: left to the use case
    with pytest.raises(PermissionDenied, match="acts for orchestrator ada only"):
        access.allow_orchestrator(ADA, "bob")
    with pytest.raises(PermissionDenied, match="assigned to another orchestrator"):
        access.allow_task(ADA, "bob")
