"""Editor and admin accounts: one login for all three services."""
