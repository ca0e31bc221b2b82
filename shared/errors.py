"""The one tree of errors the person concerned is told about.

Domain code raises these (or its own subclasses: ``NoSuchItem(NotFound)``); it never
picks an HTTP status. :mod:`shared.web.errors` maps each kind to its status once and
answers with a page in the visitor's language or with JSON. The message is English,
written for the person who caused or can fix the problem, and translated on pages.
"""

from __future__ import annotations


class KgiError(Exception):
    """Something the person concerned should be told; ``message`` says what, in English.

    ``field`` names the input at fault (for forms and JSON bodies); ``retry_after`` is
    the number of seconds after which trying again makes sense.
    """

    def __init__(
        self, message: str, field: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after = retry_after


class BadRequest(KgiError):
    """The request itself cannot be read (malformed JSON, an unknown action)."""


class Forbidden(KgiError):
    """Not allowed for whoever asks (role, token, signature)."""


class NotFound(KgiError):
    """There is no such thing (or the asker may not know it exists)."""


class Conflict(KgiError):
    """Not possible in the thing's current state, or it changed meanwhile."""


class Gone(KgiError):
    """It existed but is no longer valid (an expired or used link)."""


class TooLarge(KgiError):
    """More data than accepted."""


class UnsupportedType(KgiError):
    """A body in a format that is not taken here."""


class Invalid(KgiError):
    """A value is not acceptable; ``field`` says which."""


class TooMany(KgiError):
    """Too many requests of this kind; ``retry_after`` says when to try again."""


class Unavailable(KgiError):
    """Something this depends on is away for now (another service, the database)."""
