"""Subscribers: double opt-in, preferences, unsubscribe, consent log, privacy, import/export."""
