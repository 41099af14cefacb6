"""Errors that reach the user as one clear line and a non-zero exit."""


class PyruncError(Exception):
    """An error whose message is fit to show the user as is."""

    exit_code = 1


class ConfigError(PyruncError):
    """config.json (or a process.json) is invalid; the message names the field."""


class UsageError(PyruncError):
    """Bad command-line arguments."""
