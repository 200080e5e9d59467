"""Users over HTTP: profiles (public and private), profile changes, preferences, admin."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from stagecast.accounts import service as accounts
from stagecast.accounts.models import Role, User
from stagecast.crypto import SecretBox
from stagecast.runtime import Runtime
from tests.factories import (
    PASSWORD,
    Account,
    login,
    make_admin,
    register,
    set_role,
    unique_name,
)

USERS = "/api/v1/users"
ADMIN_USERS = "/api/v1/admin/users"
PROBLEM = "application/problem+json"

PUBLIC_FIELDS = {
    "id", "username", "display_name", "bio", "avatar_url", "profile_image_url", "role",
    "created_at",
}  # fmt: skip
PRIVATE_ONLY_FIELDS = {
    "email",
    "email_verified",
    "country",
    "date_of_birth",
    "status",
    "updated_at",
}
PRIVATE_FIELDS = PUBLIC_FIELDS | PRIVATE_ONLY_FIELDS

DEFAULT_PREFERENCES = {
    "language": "en",
    "theme": "system",
    "email_notifications": True,
    "live_notifications": True,
    "show_mature_content": False,
    "chat_timestamps": False,
    "autoplay": True,
    "low_latency_playback": True,
}

TODAY = datetime.now(UTC).date()
IN_THE_FUTURE = (TODAY + timedelta(days=30)).isoformat()
TWELVE_YEARS_OLD = date(TODAY.year - 12, 1, 1).isoformat()

HOSTILE_TEXT = "<script>alert(1)</script>' OR 1=1 --"
HOSTILE_NAME = "Robert'); DROP TABLE users;--"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    return problem


def assert_invalid(response: httpx.Response, field: str) -> dict[str, Any]:
    """A 422 problem whose `errors` name `field`."""
    problem = assert_problem(response, 422, "VALIDATION_ERROR")
    assert isinstance(problem["errors"], list)
    assert problem["errors"], problem
    assert field in {e["field"] for e in problem["errors"]}, problem["errors"]
    return problem


async def profile_of(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    """The account's private profile, as its owner sees it."""
    response = await client.get(f"{USERS}/{account.id}", headers=account.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def preferences_of(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    response = await client.get(f"{USERS}/{account.id}/preferences", headers=account.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def list_all_users(
    client: httpx.AsyncClient, admin: Account, **params: str
) -> list[dict[str, Any]]:
    response = await client.get(
        ADMIN_USERS, headers=admin.headers, params={"limit": "100", **params}
    )
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["has_more"] is False
    users: list[dict[str, Any]] = page["data"]
    return users


# --- Reading profiles ---------------------------------------------------------------------


async def test_profile_by_id_by_username_and_me(client: httpx.AsyncClient) -> None:
    account = await register(
        client, display_name="Night Owl", country="NL", date_of_birth="1990-05-17"
    )

    by_id = await client.get(f"{USERS}/{account.id}")
    assert by_id.status_code == 200
    assert by_id.headers["content-type"] == "application/json"
    assert by_id.json()["id"] == account.id
    assert by_id.json()["username"] == account.username
    assert by_id.json()["display_name"] == "Night Owl"

    for ref in (account.username, account.username.upper(), account.username.capitalize()):
        by_name = await client.get(f"{USERS}/{ref}")
        assert by_name.status_code == 200, ref
        assert by_name.json() == by_id.json()

    me = await client.get(f"{USERS}/me", headers=account.headers)
    assert me.status_code == 200
    body = me.json()
    assert set(body) == PRIVATE_FIELDS
    assert body["id"] == account.id
    assert body["email"] == account.email
    assert body["country"] == "NL"
    assert body["date_of_birth"] == "1990-05-17"
    assert body["status"] == "active"
    assert body["role"] == "viewer"
    assert body["email_verified"] is False


async def test_the_date_of_birth_is_stored_encrypted(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """A database leak does not give away anyone's age: the row holds ciphertext that only
    the server secret opens; the owner reads the date back, the public never sees it."""
    account = await register(client, date_of_birth="1990-05-17")
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session:
        sealed = await session.scalar(
            select(User.date_of_birth_encrypted).where(User.id == uuid.UUID(account.id))
        )
    assert sealed is not None
    assert "1990" not in sealed
    assert SecretBox(b"another-secret").decrypt(accounts.BIRTH_DATE_PURPOSE, sealed) is None
    me = await client.get(f"{USERS}/me", headers=account.headers)
    assert me.json()["date_of_birth"] == "1990-05-17"
    assert "date_of_birth" not in (await client.get(f"{USERS}/{account.id}")).json()
    cleared = await client.patch(
        f"{USERS}/me", headers=account.headers, json={"date_of_birth": None}
    )
    assert cleared.json()["date_of_birth"] is None
    async with runtime.db.session() as session:
        row = await session.get_one(User, uuid.UUID(account.id))
        assert row.date_of_birth_encrypted is None


async def test_anonymous_and_other_users_see_only_the_public_profile(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client, country="FR", date_of_birth="1985-02-03")
    other = await register(client)
    admin = await make_admin(client, app)

    for headers in ({}, other.headers):
        for ref in (owner.id, owner.username):
            response = await client.get(f"{USERS}/{ref}", headers=headers)
            assert response.status_code == 200
            body = response.json()
            assert set(body) == PUBLIC_FIELDS, body
            assert body["id"] == owner.id
            assert owner.email not in response.text
            assert "1985-02-03" not in response.text

    for viewer in (owner, admin):
        response = await client.get(f"{USERS}/{owner.id}", headers=viewer.headers)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == PRIVATE_FIELDS, body
        assert body["id"] == owner.id
        assert body["email"] == owner.email
        assert body["country"] == "FR"
        assert body["date_of_birth"] == "1985-02-03"
        assert body["status"] == "active"


async def test_me_is_the_caller_also_for_an_admin(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await make_admin(client, app)
    response = await client.get(f"{USERS}/me", headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["id"] == admin.id
    assert response.json()["role"] == "admin"


@pytest.mark.parametrize("ref", ["0190c3a4-0000-7000-8000-00000000dead", "nobody_here", "ME"])
async def test_unknown_user_is_404(client: httpx.AsyncClient, ref: str) -> None:
    account = await register(client)
    for headers in ({}, account.headers):
        response = await client.get(f"{USERS}/{ref}", headers=headers)
        problem = assert_problem(response, 404, "USER_NOT_FOUND")
        assert problem["instance"] == f"{USERS}/{ref}"


async def test_me_needs_a_signed_in_caller(client: httpx.AsyncClient) -> None:
    get = await client.get(f"{USERS}/me")
    assert_problem(get, 401, "AUTHENTICATION_REQUIRED")
    assert get.headers["www-authenticate"].startswith("Bearer")
    patch = await client.patch(f"{USERS}/me", json={"bio": "hello"})
    assert_problem(patch, 401, "AUTHENTICATION_REQUIRED")
    prefs = await client.get(f"{USERS}/me/preferences")
    assert_problem(prefs, 401, "AUTHENTICATION_REQUIRED")


# --- Changing profiles --------------------------------------------------------------------


async def test_owner_changes_their_profile(client: httpx.AsyncClient) -> None:
    account = await register(client)
    before = await profile_of(client, account)
    new_name = unique_name("Renamed_")
    changes = {
        "display_name": "Stage Name",
        "bio": "Speedruns on weekends.",
        "avatar_url": "https://cdn.example.com/avatars/me.png",
        "country": "de",
        "date_of_birth": "1999-12-31",
        "username": new_name,
    }
    response = await client.patch(f"{USERS}/{account.id}", headers=account.headers, json=changes)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == PRIVATE_FIELDS
    assert body["display_name"] == "Stage Name"
    assert body["bio"] == "Speedruns on weekends."
    assert body["avatar_url"] == "https://cdn.example.com/avatars/me.png"
    assert body["country"] == "DE"  # upper-cased
    assert body["date_of_birth"] == "1999-12-31"
    assert body["username"] == new_name
    # What did not change stayed.
    assert body["email"] == before["email"]
    assert body["id"] == before["id"]
    assert body["created_at"] == before["created_at"]

    # The change is stored, and the profile answers to its new name only.
    assert await profile_of(client, account) == body
    renamed = await client.get(f"{USERS}/{new_name.lower()}")
    assert renamed.status_code == 200
    assert renamed.json()["id"] == account.id
    assert_problem(await client.get(f"{USERS}/{account.username}"), 404, "USER_NOT_FOUND")


async def test_patch_sends_only_what_changes(client: httpx.AsyncClient) -> None:
    account = await register(client, display_name="Keep Me", country="JP")
    response = await client.patch(
        f"{USERS}/me", headers=account.headers, json={"bio": "only the bio"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["bio"] == "only the bio"
    assert body["display_name"] == "Keep Me"
    assert body["country"] == "JP"
    assert body["username"] == account.username


async def test_null_clears_optional_fields(client: httpx.AsyncClient) -> None:
    account = await register(client)
    set_all = await client.patch(
        f"{USERS}/{account.id}",
        headers=account.headers,
        json={
            "bio": "something",
            "avatar_url": "https://cdn.example.com/a.png",
            "country": "SE",
            "date_of_birth": "2000-01-01",
        },
    )
    assert set_all.status_code == 200
    assert set_all.json()["country"] == "SE"

    cleared = await client.patch(
        f"{USERS}/{account.id}",
        headers=account.headers,
        json={"bio": None, "avatar_url": None, "country": None, "date_of_birth": None},
    )
    assert cleared.status_code == 200
    stored = await profile_of(client, account)
    for field in ("bio", "avatar_url", "country", "date_of_birth"):
        assert cleared.json()[field] is None, field
        assert stored[field] is None, field
    assert stored["display_name"] == set_all.json()["display_name"]


@pytest.mark.parametrize("field", ["username", "display_name"])
async def test_required_fields_cannot_be_cleared(client: httpx.AsyncClient, field: str) -> None:
    account = await register(client)
    before = await profile_of(client, account)
    response = await client.patch(
        f"{USERS}/{account.id}", headers=account.headers, json={field: None}
    )
    problem = assert_problem(response, 422, "VALIDATION_ERROR")
    assert any(f"{field} cannot be cleared" in e["message"] for e in problem["errors"])
    assert await profile_of(client, account) == before


async def test_new_username_must_be_free_case_insensitively(client: httpx.AsyncClient) -> None:
    first = await register(client)
    second = await register(client)
    before = await profile_of(client, second)

    for taken in (first.username, first.username.upper()):
        response = await client.patch(
            f"{USERS}/{second.id}", headers=second.headers, json={"username": taken}
        )
        assert_problem(response, 409, "USERNAME_TAKEN")
    assert await profile_of(client, second) == before
    assert (await client.get(f"{USERS}/{first.username}")).json()["id"] == first.id

    # Changing the case of one's own name is not a conflict.
    own = await client.patch(
        f"{USERS}/{second.id}", headers=second.headers, json={"username": second.username.upper()}
    )
    assert own.status_code == 200, own.text
    assert own.json()["username"] == second.username.upper()
    # The new name is taken for others too.
    clash = await client.patch(
        f"{USERS}/{first.id}", headers=first.headers, json={"username": second.username}
    )
    assert_problem(clash, 409, "USERNAME_TAKEN")


async def test_only_the_owner_or_an_admin_may_change_a_profile(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    other = await register(client)
    admin = await make_admin(client, app)
    before = await profile_of(client, owner)

    denied = await client.patch(
        f"{USERS}/{owner.id}", headers=other.headers, json={"bio": "hijacked"}
    )
    assert_problem(denied, 403, "PERMISSION_DENIED")
    denied_by_name = await client.patch(
        f"{USERS}/{owner.username}", headers=other.headers, json={"bio": "hijacked"}
    )
    assert_problem(denied_by_name, 403, "PERMISSION_DENIED")
    anonymous = await client.patch(f"{USERS}/{owner.id}", json={"bio": "hijacked"})
    assert_problem(anonymous, 401, "AUTHENTICATION_REQUIRED")
    assert await profile_of(client, owner) == before

    by_admin = await client.patch(
        f"{USERS}/{owner.id}", headers=admin.headers, json={"bio": "Edited by staff"}
    )
    assert by_admin.status_code == 200
    assert by_admin.json()["id"] == owner.id
    assert (await profile_of(client, owner))["bio"] == "Edited by staff"
    # The admin's own profile is untouched.
    assert (await profile_of(client, admin))["bio"] is None


async def test_patch_of_an_unknown_user_is_404(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await make_admin(client, app)
    response = await client.patch(
        f"{USERS}/{uuid.uuid4()}", headers=admin.headers, json={"bio": "x"}
    )
    assert_problem(response, 404, "USER_NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"nickname": "x"}, "nickname", id="unknown-field"),
        pytest.param({"bio": 123}, "bio", id="bio-int"),
        pytest.param({"display_name": ["x"]}, "display_name", id="display-name-list"),
        pytest.param({"display_name": ""}, "display_name", id="display-name-empty"),
        pytest.param({"display_name": "x" * 65}, "display_name", id="display-name-too-long"),
        pytest.param({"bio": "x" * 501}, "bio", id="bio-too-long"),
        pytest.param(
            {"avatar_url": "http://cdn.example.com/a.png"}, "avatar_url", id="avatar-http"
        ),
        pytest.param({"avatar_url": "javascript:alert(1)"}, "avatar_url", id="avatar-javascript"),
        pytest.param({"avatar_url": "not a url"}, "avatar_url", id="avatar-not-url"),
        pytest.param({"country": "XX"}, "country", id="country-unknown"),
        pytest.param({"country": "USA"}, "country", id="country-alpha3"),
        pytest.param({"date_of_birth": IN_THE_FUTURE}, "date_of_birth", id="dob-future"),
        pytest.param({"date_of_birth": TWELVE_YEARS_OLD}, "date_of_birth", id="dob-under-13"),
        pytest.param({"date_of_birth": "1850-01-01"}, "date_of_birth", id="dob-too-old"),
        pytest.param({"username": "bob smith"}, "username", id="username-space"),
        pytest.param({"username": "bob'; DROP TABLE users;--"}, "username", id="username-sql"),
        pytest.param({"username": "ab"}, "username", id="username-short"),
        pytest.param({"username": "a" * 26}, "username", id="username-long"),
    ],
)
async def test_invalid_profile_changes_are_refused_and_change_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    account = await register(client)
    # Give every field a value first, so that a wrongly applied change would show.
    prepared = await client.patch(
        f"{USERS}/{account.id}",
        headers=account.headers,
        json={
            "bio": "original bio",
            "avatar_url": "https://cdn.example.com/orig.png",
            "country": "IT",
            "date_of_birth": "1970-06-15",
            "display_name": "Original",
        },
    )
    assert prepared.status_code == 200
    before = await profile_of(client, account)

    response = await client.patch(f"{USERS}/{account.id}", headers=account.headers, json=body)
    problem = assert_invalid(response, field)
    assert all(e["in"] == "body" for e in problem["errors"])
    assert await profile_of(client, account) == before
    # Also through the public view, by the (unchanged) username.
    public = await client.get(f"{USERS}/{account.username}")
    assert public.status_code == 200
    assert public.json()["bio"] == "original bio"


async def test_html_and_sql_looking_text_is_stored_verbatim(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    account = await register(client)
    response = await client.patch(
        f"{USERS}/{account.id}",
        headers=account.headers,
        json={"bio": HOSTILE_TEXT, "display_name": HOSTILE_NAME},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["bio"] == HOSTILE_TEXT
    assert response.json()["display_name"] == HOSTILE_NAME

    public = await client.get(f"{USERS}/{account.username}")
    assert public.status_code == 200
    assert public.headers["content-type"] == "application/json"
    assert public.json()["bio"] == HOSTILE_TEXT
    assert public.json()["display_name"] == HOSTILE_NAME
    # A JSON string, not markup spliced into the body.
    assert json.dumps(HOSTILE_TEXT) in public.text

    # The users table still works: a new account registers and is found next to this one.
    newcomer = await register(client)
    assert (await client.get(f"{USERS}/{newcomer.username}")).status_code == 200
    admin = await make_admin(client, app)
    ids = {u["id"] for u in await list_all_users(client, admin)}
    assert {account.id, newcomer.id, admin.id} <= ids


# --- Preferences ------------------------------------------------------------------------


async def test_preferences_start_at_their_defaults(client: httpx.AsyncClient) -> None:
    account = await register(client)
    assert await preferences_of(client, account) == DEFAULT_PREFERENCES
    by_me = await client.get(f"{USERS}/me/preferences", headers=account.headers)
    assert by_me.status_code == 200
    assert by_me.json() == DEFAULT_PREFERENCES


async def test_preferences_patch_merges(client: httpx.AsyncClient) -> None:
    account = await register(client)
    first = await client.patch(
        f"{USERS}/{account.id}/preferences", headers=account.headers, json={"theme": "dark"}
    )
    assert first.status_code == 200
    assert first.json() == {**DEFAULT_PREFERENCES, "theme": "dark"}

    second = await client.patch(
        f"{USERS}/me/preferences",
        headers=account.headers,
        json={"language": "pt-BR", "autoplay": False, "show_mature_content": True},
    )
    assert second.status_code == 200
    expected = {
        **DEFAULT_PREFERENCES,
        "theme": "dark",  # kept from the first change
        "language": "pt-BR",
        "autoplay": False,
        "show_mature_content": True,
    }
    assert second.json() == expected
    assert await preferences_of(client, account) == expected

    # An empty patch changes nothing; `null` resets that preference to its default.
    assert (
        await client.patch(f"{USERS}/me/preferences", headers=account.headers, json={})
    ).json() == expected
    nulled = await client.patch(
        f"{USERS}/me/preferences", headers=account.headers, json={"theme": None}
    )
    assert nulled.status_code == 200
    expected["theme"] = DEFAULT_PREFERENCES["theme"]
    assert nulled.json() == expected
    assert await preferences_of(client, account) == expected
    # Preferences are not part of the profile, and the profile did not change.
    assert "theme" not in await profile_of(client, account)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"theme": "neon"}, "theme", id="theme"),
        pytest.param({"language": "english"}, "language", id="language-word"),
        pytest.param({"language": "EN"}, "language", id="language-upper"),
        pytest.param({"language": "pt-br"}, "language", id="language-region-lower"),
        pytest.param({"autoplay": "sometimes"}, "autoplay", id="bool"),
        pytest.param({"volume": 11}, "volume", id="unknown-field"),
    ],
)
async def test_invalid_preferences_are_refused_and_change_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    account = await register(client)
    prepared = await client.patch(
        f"{USERS}/me/preferences",
        headers=account.headers,
        json={"theme": "light", "language": "fr", "chat_timestamps": True},
    )
    assert prepared.status_code == 200
    before = await preferences_of(client, account)
    assert before == {
        **DEFAULT_PREFERENCES,
        "theme": "light",
        "language": "fr",
        "chat_timestamps": True,
    }

    response = await client.patch(
        f"{USERS}/{account.id}/preferences", headers=account.headers, json=body
    )
    assert_invalid(response, field)
    assert await preferences_of(client, account) == before


async def test_only_the_owner_or_an_admin_may_see_or_change_preferences(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    other = await register(client)
    admin = await make_admin(client, app)
    url = f"{USERS}/{owner.id}/preferences"

    assert_problem(await client.get(url, headers=other.headers), 403, "PERMISSION_DENIED")
    assert_problem(
        await client.patch(url, headers=other.headers, json={"theme": "dark"}),
        403,
        "PERMISSION_DENIED",
    )
    assert_problem(await client.get(url), 401, "AUTHENTICATION_REQUIRED")
    assert_problem(await client.patch(url, json={"theme": "dark"}), 401, "AUTHENTICATION_REQUIRED")
    assert await preferences_of(client, owner) == DEFAULT_PREFERENCES

    seen_by_admin = await client.get(url, headers=admin.headers)
    assert seen_by_admin.status_code == 200
    assert seen_by_admin.json() == DEFAULT_PREFERENCES
    changed = await client.patch(url, headers=admin.headers, json={"email_notifications": False})
    assert changed.status_code == 200
    assert await preferences_of(client, owner) == {
        **DEFAULT_PREFERENCES,
        "email_notifications": False,
    }
    assert await preferences_of(client, admin) == DEFAULT_PREFERENCES


# --- Admin: listing users -------------------------------------------------------------------


async def test_admin_user_list_is_for_admins_only(client: httpx.AsyncClient, app: FastAPI) -> None:
    viewer = await register(client)
    moderator = await register(client)
    await set_role(app, moderator, Role.MODERATOR)
    admin = await make_admin(client, app)

    assert_problem(await client.get(ADMIN_USERS), 401, "AUTHENTICATION_REQUIRED")
    assert_problem(await client.get(ADMIN_USERS, headers=viewer.headers), 403, "PERMISSION_DENIED")
    assert_problem(
        await client.get(ADMIN_USERS, headers=moderator.headers), 403, "PERMISSION_DENIED"
    )

    response = await client.get(ADMIN_USERS, headers=admin.headers)
    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"data", "next_cursor", "has_more"}
    by_id = {u["id"]: u for u in page["data"]}
    assert {viewer.id, moderator.id, admin.id} <= set(by_id)
    # Admins see private fields in the list.
    assert set(by_id[viewer.id]) == PRIVATE_FIELDS
    assert by_id[viewer.id]["email"] == viewer.email
    assert by_id[moderator.id]["role"] == "moderator"


async def test_admin_user_list_filters_by_role_status_and_text(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await make_admin(client, app)
    tag = uuid.uuid4().hex[:8]
    zebra = await register(client, username=f"zebra{tag}")
    yak = await register(client, username=f"yak{tag}", email=f"fur{tag}@example.org")
    creator = await register(client)
    await set_role(app, creator, Role.CREATOR)

    admins = await list_all_users(client, admin, role="admin")
    assert admin.id in {u["id"] for u in admins}
    assert all(u["role"] == "admin" for u in admins)
    assert not {zebra.id, yak.id, creator.id} & {u["id"] for u in admins}

    creators = await list_all_users(client, admin, role="creator")
    assert [u["id"] for u in creators] == [creator.id]

    by_username = await list_all_users(client, admin, q=f"ZEBRA{tag}"[2:])
    assert [u["id"] for u in by_username] == [zebra.id]
    by_email = await list_all_users(client, admin, q=f"fur{tag}@example.org")
    assert [u["id"] for u in by_email] == [yak.id]
    both = await list_all_users(client, admin, q=tag)
    assert {u["id"] for u in both} == {zebra.id, yak.id}
    assert await list_all_users(client, admin, q=f"nothing{tag}") == []
    # Text that looks like SQL is just text.
    assert await list_all_users(client, admin, q="' OR 1=1 --") == []

    active = await list_all_users(client, admin, status="active")
    assert {admin.id, zebra.id, yak.id, creator.id} <= {u["id"] for u in active}
    assert await list_all_users(client, admin, status="suspended") == []

    bad_role = await client.get(ADMIN_USERS, headers=admin.headers, params={"role": "superuser"})
    assert_invalid(bad_role, "role")
    bad_status = await client.get(ADMIN_USERS, headers=admin.headers, params={"status": "deleted"})
    assert_invalid(bad_status, "status")


async def test_admin_user_search_treats_like_wildcards_literally(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """`_` and `%` are ordinary characters of a fragment (`_` is legal in usernames)."""
    admin = await make_admin(client, app)
    tag = uuid.uuid4().hex[:8]
    underscored = await register(client, username=f"ab_cd{tag}")
    lookalike = await register(client, username=f"abxcd{tag}")

    found = await list_all_users(client, admin, q=f"b_cd{tag}")
    assert [u["id"] for u in found] == [underscored.id]
    assert lookalike.id not in {u["id"] for u in found}
    assert await list_all_users(client, admin, q="%") == []


async def test_admin_user_list_walks_pages_with_a_cursor(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await make_admin(client, app)
    created = [await register(client) for _ in range(4)]
    everyone = [u["id"] for u in await list_all_users(client, admin)]
    assert {a.id for a in created} | {admin.id} <= set(everyone)
    # Newest first: the last registered leads.
    assert everyone[0] == created[-1].id

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(everyone) + 1):
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        response = await client.get(ADMIN_USERS, headers=admin.headers, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) == 1
        seen.append(page["data"][0]["id"])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        assert isinstance(page["next_cursor"], str)
        cursor = page["next_cursor"]
    else:
        pytest.fail("pagination did not end")
    assert len(seen) == len(set(seen))
    assert seen == everyone

    for garbage in ("!!notacursor", "eyJub3QiOiJhIGxpc3QifQ", "W10"):
        bad = await client.get(ADMIN_USERS, headers=admin.headers, params={"cursor": garbage})
        assert_invalid(bad, "cursor")


# --- Admin: changing users ------------------------------------------------------------------


async def test_suspension_ends_access_and_reactivation_restores_login(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await make_admin(client, app)
    user = await register(client)
    assert (await client.get("/api/v1/auth/me", headers=user.headers)).status_code == 200

    response = await client.patch(
        f"{ADMIN_USERS}/{user.id}", headers=admin.headers, json={"status": "suspended"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user.id
    assert response.json()["status"] == "suspended"

    # Suspension revokes every session, so the existing access token is refused as revoked.
    for path in ("/api/v1/auth/me", f"{USERS}/me"):
        refused = await client.get(path, headers=user.headers)
        assert_problem(refused, 401, "SESSION_REVOKED")
    assert_problem(
        await client.patch(f"{USERS}/me", headers=user.headers, json={"bio": "still here?"}),
        401,
        "SESSION_REVOKED",
    )
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refresh.status_code == 401
    # Signing in again is refused because of the suspension.
    denied = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert_problem(denied, 403, "ACCOUNT_SUSPENDED")
    suspended = await list_all_users(client, admin, status="suspended")
    assert [u["id"] for u in suspended] == [user.id]

    reactivated = await client.patch(
        f"{ADMIN_USERS}/{user.id}", headers=admin.headers, json={"status": "active"}
    )
    assert reactivated.status_code == 200
    assert reactivated.json()["status"] == "active"
    tokens = await login(client, user)
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["status"] == "active"
    # The sessions ended by the suspension stay ended.
    assert_problem(
        await client.get("/api/v1/auth/me", headers=user.headers), 401, "SESSION_REVOKED"
    )


async def test_admin_changes_a_role(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await make_admin(client, app)
    user = await register(client)
    response = await client.patch(
        f"{ADMIN_USERS}/{user.id}", headers=admin.headers, json={"role": "creator"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "creator"
    assert response.json()["status"] == "active"
    assert (await client.get(f"{USERS}/{user.id}")).json()["role"] == "creator"
    # The user's session keeps working and sees the new role.
    me = await client.get("/api/v1/auth/me", headers=user.headers)
    assert me.status_code == 200
    assert me.json()["role"] == "creator"
    assert [u["id"] for u in await list_all_users(client, admin, role="creator")] == [user.id]


async def test_admin_cannot_suspend_or_demote_themselves(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await make_admin(client, app)
    for body in ({"status": "suspended"}, {"role": "viewer"}, {"role": "moderator"}):
        response = await client.patch(f"{ADMIN_USERS}/{admin.id}", headers=admin.headers, json=body)
        assert_problem(response, 403, "PERMISSION_DENIED")
    me = await client.get("/api/v1/auth/me", headers=admin.headers)
    assert me.status_code == 200
    assert me.json()["role"] == "admin"
    assert me.json()["status"] == "active"
    assert (await client.get(ADMIN_USERS, headers=admin.headers)).status_code == 200
    # Staying an admin is allowed.
    same = await client.patch(
        f"{ADMIN_USERS}/{admin.id}", headers=admin.headers, json={"role": "admin"}
    )
    assert same.status_code == 200
    assert same.json()["role"] == "admin"


async def test_admin_user_update_guards(client: httpx.AsyncClient, app: FastAPI) -> None:
    admin = await make_admin(client, app)
    user = await register(client)
    other = await register(client)

    assert_problem(
        await client.patch(
            f"{ADMIN_USERS}/{other.id}", headers=user.headers, json={"status": "suspended"}
        ),
        403,
        "PERMISSION_DENIED",
    )
    assert_problem(
        await client.patch(f"{ADMIN_USERS}/{other.id}", json={"role": "admin"}),
        401,
        "AUTHENTICATION_REQUIRED",
    )
    assert_problem(
        await client.patch(
            f"{ADMIN_USERS}/{uuid.uuid4()}", headers=admin.headers, json={"role": "creator"}
        ),
        404,
        "USER_NOT_FOUND",
    )
    for body, field in (
        ({"status": "deleted"}, "status"),
        ({"role": "overlord"}, "role"),
        ({"password": "x"}, "password"),
    ):
        response = await client.patch(f"{ADMIN_USERS}/{other.id}", headers=admin.headers, json=body)
        assert_invalid(response, field)
    assert_invalid(
        await client.patch(
            f"{ADMIN_USERS}/{other.username}", headers=admin.headers, json={"role": "creator"}
        ),
        "user_id",
    )
    profile = await profile_of(client, other)
    assert (profile["role"], profile["status"]) == ("viewer", "active")
