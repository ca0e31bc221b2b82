"""The ``kgi`` command: runs and administers the whole platform."""
