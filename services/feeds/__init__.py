"""Feeds: editors' news and conference reports, partner aggregation, RSS/Atom/JSON/iCal feeds."""
