"""The OpenAPI 3.1 document of the subscribers JSON API."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "What went wrong, in English."},
        "status": {"type": "integer"},
        "field": {"type": "string", "description": "The field at fault (422 only)."},
    },
    "required": ["error", "status"],
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "KGI-Infobrief subscribers API",
        "version": "1.0.0",
        "description": (
            "Sign-up for the KGI-Infobrief with double opt-in. The answer is the same whether "
            "the address is new or known, so the API cannot be used to find out who subscribes."
        ),
    },
    "paths": {
        "/subscribers/api/subscriptions": {
            "post": {
                "summary": "Sign up an address (sends a confirmation mail)",
                "operationId": "subscribe",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "email": {
                                        "type": "string",
                                        "format": "email",
                                        "maxLength": 254,
                                    },
                                    "name": {"type": "string", "maxLength": 200},
                                    "language": {
                                        "type": "string",
                                        "enum": ["de", "en"],
                                        "default": "de",
                                    },
                                    "source": {
                                        "type": "string",
                                        "description": "Page the sign-up came from.",
                                    },
                                },
                                "required": ["email"],
                            }
                        }
                    },
                },
                "responses": {
                    "202": {
                        "description": "Accepted; a confirmation mail follows if possible.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "status": {"const": "accepted"},
                                        "message": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "400": _error("The body is not a JSON object."),
                    "413": _error("The body is too large."),
                    "415": _error("The body is not application/json."),
                    "422": _error("A field is invalid (see `field`)."),
                    "429": _error("Too many sign-ups from this client; see Retry-After."),
                },
            }
        }
    },
    "components": {"schemas": {"Error": _ERROR}},
}
