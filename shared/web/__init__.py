"""Web helpers every service uses: app factory, templates, sessions, CSRF, errors."""
