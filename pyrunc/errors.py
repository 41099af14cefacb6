"""Errors that reach the user as one clear line and a non-zero exit."""


class PyruncError(Exception):
    """An error whose message is fit to show the user as is."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(PyruncError):
    """config.json (or a process.json) is invalid; the message names the field."""


class UsageError(PyruncError):
    """Bad command-line arguments."""
