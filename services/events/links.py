"""The links in a registration's mails: confirming it, and its own page (what it holds,
cancelling). Each is signed for its purpose and names the registration and a secret of
its row, so a link stops working when the row's secret changes or the row is purged."""

from __future__ import annotations

import secrets
from typing import Any

from services.events import store
from services.events.store import CONFIRMED, Registration
from shared.config import get_settings
from shared.database import read_connection
from shared.errors import BadRequest, Gone
from shared.tokens import ExpiredToken, InvalidToken, make_token, read_token
from shared.web.paths import absolute_url_for

#: Token purposes (each its own signing salt).
CONFIRM_PURPOSE = "event-confirm"
MANAGE_PURPOSE = "event-manage"


class LinkInvalid(BadRequest):
    """A link from a mail was altered or belongs to no one."""


class LinkExpired(Gone, LinkInvalid):
    """A link from a mail that was valid once: expired, or its registration is gone."""


def confirmation_url(registration: Registration) -> str:
    """The link of the confirmation mail (while a confirmation is outstanding)."""
    assert registration.confirm_nonce, "no confirmation outstanding"
    # The manage key too: it outlives the confirmation, so an old link of a confirmed
    # registration still shows it, and never another's that got the id after a purge.
    token = make_token(
        CONFIRM_PURPOSE,
        {"id": registration.id, "s": registration.confirm_nonce, "k": registration.manage_key},
    )
    return absolute_url_for("events:confirm", token=token) + f"?lang={registration.language}"


def manage_url(registration: Registration) -> str:
    """The registration's own page (what one holds, cancelling): in every mail."""
    token = make_token(MANAGE_PURPOSE, {"id": registration.id, "s": registration.manage_key})
    return absolute_url_for("events:registration", token=token) + f"?lang={registration.language}"


def _read_link(purpose: str, token: str, max_age: int | None = None) -> dict[str, Any]:
    damaged = "This link is damaged or incomplete. Please copy the whole link from the mail."
    try:
        payload = read_token(purpose, token, max_age)
    except ExpiredToken:
        raise LinkExpired("This link has expired. Please register again.") from None
    except InvalidToken:
        raise LinkInvalid(damaged) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), int):
        raise LinkInvalid(damaged)
    return payload


def _registration_of(purpose: str, token: str, max_age: int | None) -> Registration:
    """The registration a link names, if the link's secret is still the row's."""
    payload = _read_link(purpose, token, max_age)
    with read_connection("events") as conn:
        found = store.registration(conn, payload["id"])
    if found is None:
        raise LinkExpired("This link is no longer valid. Please register again.")
    if purpose == CONFIRM_PURPOSE:
        if not secrets.compare_digest(found.manage_key, str(payload.get("k", ""))):
            raise LinkExpired("This link is no longer valid. Please register again.")
        if found.confirm_nonce is None and found.status == CONFIRMED:
            return found  # confirmed already: the link shows that again
        secret = found.confirm_nonce
    else:
        secret = found.manage_key
    if secret is None or not secrets.compare_digest(secret, str(payload.get("s", ""))):
        raise LinkExpired("This link is no longer valid. Please register again.")
    return found


def registration_to_confirm(token: str) -> Registration:
    """The registration a confirmation link belongs to; LinkInvalid/LinkExpired."""
    return _registration_of(CONFIRM_PURPOSE, token, get_settings().pending_ttl_seconds)


def registration_to_manage(token: str) -> Registration:
    """The registration a manage link belongs to; LinkExpired once it was purged."""
    return _registration_of(MANAGE_PURPOSE, token, None)
