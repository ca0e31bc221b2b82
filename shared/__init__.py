"""Code every service uses: configuration, database, broker, mail, tokens, web helpers."""
