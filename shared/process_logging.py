"""How the long-running processes log: one format, INFO and up, to standard error."""

from __future__ import annotations

import logging

#: Time, level and logger name first, so lines of several processes can be merged.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging() -> None:
    """Log INFO and up in LOG_FORMAT (the worker, the scheduler, ``kgi inbound``)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    quiet_libraries()


#: Libraries whose INFO lines tell an operator nothing (Alembic: each plugin it sets up,
#: the migration context); their warnings still show.
QUIET_LOGGERS = ("alembic",)


def quiet_libraries() -> None:
    """Raise QUIET_LOGGERS to WARNING (whatever configured logging: ours, Dramatiq's)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
