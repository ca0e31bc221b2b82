"""The OpenAPI 3.1 document of the subscribers JSON API: the public sign-up and the
internal API the newsletter service calls with the service token."""

from __future__ import annotations

from functools import cache
from typing import Any

from services.subscribers.feedback import EFFECTIVE_KINDS, UNSUBSCRIBED_IN_WEEK
from services.subscribers.transfer import MAX_CONFIRMED_IDS
from shared.web.paths import MAX_ROW_ID, path_template

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "What went wrong, in English."},
        "status": {"type": "integer"},
        "field": {"type": "string", "description": "The field at fault (422 only)."},
    },
    "required": ["error", "status"],
}

_RECIPIENT = {
    "type": "object",
    "description": "One confirmed subscriber with the personal links of their mails.",
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "email": {"type": "string", "description": "ASCII form (IDNA domain)."},
        "name": {"type": "string"},
        "unsubscribe_url": {"type": "string", "format": "uri"},
        "preferences_url": {"type": "string", "format": "uri"},
    },
    "required": ["id", "email", "name", "unsubscribe_url", "preferences_url"],
}

_SUBSCRIPTION = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "format": "email", "maxLength": 254},
        "name": {
            "type": "string",
            "maxLength": 200,
            "description": "Display name; no line breaks or control characters.",
        },
        "language": {"type": "string", "enum": ["de", "en"], "default": "de"},
        "source": {
            "type": "string",
            "description": "Page the sign-up came from; a long one is cut, not refused.",
        },
    },
    "required": ["email"],
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


#: Answers every operation that reads a JSON body may give.
_BODY_ERRORS = {
    "400": _error("The body is not a JSON object (or not valid JSON, or nested too deeply)."),
    "413": _error("The body is too large."),
    "415": _error("The body is not application/json."),
}

#: The answer of internal operations called without the service token.
_FORBIDDEN = {"403": _error("The service token is missing or wrong.")}

#: What a relay's webhook answers.
_WEBHOOK_RESPONSES = {
    "200": {
        "description": "Verified; this many reports were recorded (repeats count once).",
        "content": _json(
            {
                "type": "object",
                "properties": {"recorded": {"type": "integer", "minimum": 0}},
                "required": ["recorded"],
            }
        ),
    },
    "403": _error("The signature is missing, wrong or too old, or the body is not the relay's."),
    "404": _error("This relay's webhook is not configured."),
    "413": _error("The body is too large."),
    "503": _error("The reports cannot be recorded right now; repeat after Retry-After."),
}

_DOCUMENT = {
    "summary": "This document",
    "responses": {
        "200": {
            "description": "The OpenAPI document.",
            "content": _json({"type": "object", "required": ["openapi", "paths"]}),
        }
    },
}


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the subscribers API (its paths read from the route table,
    so it is made once the registry has installed it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "KGI-Infobrief subscribers API",
            "version": "1.1.0",
            "description": (
                "Sign-up for the KGI-Infobrief with double opt-in. The answer is the same whether "
                "the address is new or known, so the API cannot be used to find out who "
                "subscribes. The internal operations serve the platform's own "
                "newsletter service and need its bearer token."
            ),
        },
        "paths": {
            path_template("subscribers:api_subscriptions"): {
                "post": {
                    "summary": "Sign up an address (sends a confirmation mail)",
                    "operationId": "subscribe",
                    "requestBody": {"required": True, "content": _json(_SUBSCRIPTION)},
                    "responses": {
                        "202": {
                            "description": "Accepted; a confirmation mail follows if possible.",
                            "content": _json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "status": {"const": "accepted"},
                                        "message": {"type": "string"},
                                    },
                                    "required": ["status", "message"],
                                }
                            ),
                        },
                        **_BODY_ERRORS,
                        "422": _error("A field is invalid (see `field`)."),
                        "429": _error("Too many sign-ups from this client; see Retry-After."),
                    },
                }
            },
            path_template("subscribers:hook_mailgun"): {
                "post": {
                    "summary": "Mailgun's webhook: bounces, complaints, unsubscribes",
                    "description": (
                        "Mailgun's JSON event with its `signature` object, verified with "
                        "KGI_MAILGUN_WEBHOOK_KEY (HMAC-SHA256 over timestamp and token; at most "
                        "5 minutes old)."
                    ),
                    "operationId": "mailgunWebhook",
                    "requestBody": {"required": True, "content": _json({"type": "object"})},
                    "responses": _WEBHOOK_RESPONSES,
                }
            },
            path_template("subscribers:hook_sendgrid"): {
                "post": {
                    "summary": "SendGrid's signed Event Webhook: bounces, complaints, unsubscribes",
                    "description": (
                        "A JSON array of events, verified with the ECDSA key in "
                        "KGI_SENDGRID_WEBHOOK_KEY over the timestamp header and the body."
                    ),
                    "operationId": "sendgridWebhook",
                    "parameters": [
                        {
                            "name": name,
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                        for name in (
                            "X-Twilio-Email-Event-Webhook-Signature",
                            "X-Twilio-Email-Event-Webhook-Timestamp",
                        )
                    ],
                    "requestBody": {
                        "required": True,
                        "content": _json({"type": "array", "items": {"type": "object"}}),
                    },
                    "responses": _WEBHOOK_RESPONSES,
                }
            },
            path_template("subscribers:internal_audience"): {
                "get": {
                    "summary": "Confirmed subscribers of one language, streamed",
                    "description": (
                        "One JSON object per line (`application/x-ndjson`), each a `Recipient`, "
                        "in id order."
                    ),
                    "operationId": "audience",
                    "security": [{"serviceToken": []}],
                    "parameters": [
                        {
                            "name": "language",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["de", "en"], "default": "de"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "Recipients as JSON lines (empty when there are none).",
                            "content": {
                                "application/x-ndjson": {
                                    "schema": {"$ref": "#/components/schemas/Recipient"}
                                }
                            },
                        },
                        **_FORBIDDEN,
                        "422": _error("The language is not de or en."),
                    },
                }
            },
            path_template("subscribers:internal_confirmed"): {
                "post": {
                    "summary": "Which of these subscribers are confirmed right now",
                    "operationId": "stillConfirmed",
                    "security": [{"serviceToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "ids": {
                                        "type": "array",
                                        "maxItems": MAX_CONFIRMED_IDS,
                                        "items": {
                                            "type": "integer",
                                            "minimum": 1,
                                            "maximum": MAX_ROW_ID,
                                        },
                                    }
                                },
                                "required": ["ids"],
                            }
                        ),
                    },
                    "responses": {
                        "200": {
                            "description": "The subset of `ids` that is confirmed.",
                            "content": _json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "confirmed": {"type": "array", "items": {"type": "integer"}}
                                    },
                                    "required": ["confirmed"],
                                }
                            ),
                        },
                        **_FORBIDDEN,
                        **_BODY_ERRORS,
                        "422": _error(
                            f"`ids` is not a list of at most {MAX_CONFIRMED_IDS} subscriber ids."
                        ),
                    },
                }
            },
            path_template("subscribers:internal_issue_feedback"): {
                "get": {
                    "summary": "Bounces and complaints about one newsletter issue",
                    "description": (
                        "How many subscribers had each kind of report about the issue: hard and "
                        "soft bounces, complaints, unsubscribes by mail; with since (when the "
                        "issue went out), also how many unsubscribed in the week after."
                    ),
                    "operationId": "issueFeedback",
                    "security": [{"serviceToken": []}],
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID},
                        },
                        {
                            "name": "since",
                            "in": "query",
                            "required": False,
                            "description": "When the issue went out (ISO 8601 with offset).",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "Counts of subscribers by kind of report.",
                            "content": _json(
                                {
                                    "type": "object",
                                    "properties": {
                                        **{
                                            str(kind): {"type": "integer", "minimum": 0}
                                            for kind in EFFECTIVE_KINDS
                                        },
                                        UNSUBSCRIBED_IN_WEEK: {"type": "integer", "minimum": 0},
                                    },
                                    "required": [str(kind) for kind in EFFECTIVE_KINDS],
                                }
                            ),
                        },
                        **_FORBIDDEN,
                        "404": _error("The id is not a number within range."),
                        "422": _error("since is not a date and time with its offset."),
                    },
                }
            },
            path_template("subscribers:openapi"): {"get": {**_DOCUMENT, "operationId": "openapi"}},
            path_template("portal:openapi"): {"get": {**_DOCUMENT, "operationId": "openapiAtRoot"}},
        },
        "components": {
            "schemas": {"Error": _ERROR, "Recipient": _RECIPIENT},
            "securitySchemes": {
                "serviceToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "HMAC-SHA256 of the installation's secret key over a fixed label "
                        "(shared.tokens.service_token); every service of one "
                        "installation derives the same token."
                    ),
                }
            },
        },
    }
