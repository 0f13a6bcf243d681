"""Management commands that run the webnovel-backup binary with the project's settings."""
