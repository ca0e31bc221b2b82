"""Newsletter: compose, render, preview, test send, schedule, dispatch, public archive."""
