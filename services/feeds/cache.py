"""The feeds service's rendering cache: feeds, the iCalendar file and public pages, kept
per content version.

Every change the public can see (publish, retract, edit of a published item, hiding,
aggregation) raises the content version in the feeds database, in the transaction that
makes the change (:func:`services.feeds.store.mark_content_changed`). A rendering is kept
per process under (version, URL) and reused until the version moves or an
effective/expiry date passes (:func:`services.feeds.listing.unchanged_until`). So a feed
is rendered once per change and per process; how it is answered from memory, and why
the version lives in the database, is told in :mod:`shared.web.caching`.
"""

from __future__ import annotations

from services.feeds import store
from shared.database import read_connection
from shared.web.caching import RenderingCache


def _content_version() -> int:
    with read_connection("feeds") as conn:
        return store.content_version_of(conn)


#: The one cache of this service's renderings in this process.
RENDERINGS = RenderingCache(_content_version)

# A change this process commits is served at once.
store.CONTENT_COMMIT_HOOKS.append(RENDERINGS.distrust)
