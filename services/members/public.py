"""The members' public side: the map page with its list, the GeoJSON the map (and any
partner site) reads, and the members' section of the home page.

The list is the page: it names every member with its federal state, contact and link,
grouped by state, and works without JavaScript. The map is drawn over it by
``members-map.js`` from the GeoJSON, for those who can use a map.
"""

from __future__ import annotations

import json
from itertools import groupby
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.members import store
from services.members.fields import (
    FEDERAL_STATES,
    InvalidMember,
    parse_state,
    state_name,
    states_by_name,
)
from shared.config import get_settings
from shared.i18n import request_language
from shared.service import PageSection
from shared.web.caching import EPOCH, conditional_response, weak_etag
from shared.web.paths import path_for
from shared.web.templates import render_page, render_text

#: The GeoJSON media type (RFC 7946 section 12).
GEOJSON_TYPE = "application/geo+json"

#: How long readers may keep the GeoJSON before asking again (seconds).
GEOJSON_MAX_AGE = 300


def _state_filter(request: Request) -> str | None:
    """``?state=`` as a federal state code; None for all (or for one we do not know: the
    filter form only offers the sixteen)."""
    raw = request.query_params.get("state", "")
    if not raw:
        return None
    try:
        return parse_state(raw)
    except InvalidMember:
        return None


def member_map(request: Request) -> Response:
    """The members' page: the list by federal state, with the map above it."""
    language = request_language(request)
    state = _state_filter(request)
    members = store.all_members(state)
    groups = [
        (code, state_name(code, language), list(group))
        for code, group in groupby(members, key=lambda member: member.federal_state)
    ]
    settings = get_settings()
    geojson = path_for("members:geojson") + (f"?state={state}" if state else "")
    return render_page(
        request,
        "members/map.html",
        {
            "groups": groups,
            "count": len(members),
            "state": state,
            "states": states_by_name(language),
            "geojson": geojson,
            "tiles": settings.map_tiles_url,
            "attribution": settings.map_attribution,
        },
    )


def feature_collection(members: list[store.Member]) -> dict[str, Any]:
    """``members`` as a GeoJSON FeatureCollection (RFC 7946: longitude before latitude).
    The same in every language (one copy for every reader): states carry their code and
    official German name."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": member.id,
                "geometry": {"type": "Point", "coordinates": [member.longitude, member.latitude]},
                "properties": {
                    "name": member.name,
                    "federal_state": member.federal_state,
                    "federal_state_name": FEDERAL_STATES[member.federal_state],
                    "contact": member.contact,
                    "email": member.email,
                    "website": member.website,
                },
            }
            for member in members
        ],
    }


def geojson(request: Request) -> Response:
    """Every member (of ``?state=``) as GeoJSON, revalidated by its entity tag. Public
    data, so any site may read it (CORS)."""
    members = store.all_members(_state_filter(request))
    body = json.dumps(feature_collection(members), ensure_ascii=False).encode("utf-8")
    last_changed = max(
        (member.updated_at for member in members if member.updated_at), default=EPOCH
    )
    response = conditional_response(
        request, body, GEOJSON_TYPE, weak_etag(body), last_changed, GEOJSON_MAX_AGE
    )
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def home_sections(request: Request) -> list[PageSection]:
    """The members' part of the home page: how many, and the way to the map."""
    count, states = store.counts()
    if count == 0:
        return []
    html = render_text("members/_home.html", request_language(request), count=count, states=states)
    return [PageSection(35, html)]
