"""Mail: building correct MIME messages and sending them over SMTP."""
