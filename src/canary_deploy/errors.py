"""The one error type users see: a message, an exit code and an optional fix-it hint."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CanaryError(Exception):
    """An error the user can act on. The CLI prints it without a traceback."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(CanaryError):
    """Bad input or usage: nothing was changed. Exit code 2."""

    exit_code = EXIT_USAGE


class OperationFailed(CanaryError):
    """The operation was attempted and failed. Exit code 1."""

    exit_code = EXIT_FAILED


class NothingToDelete(OperationFailed):
    """`delete` found no stack: nothing was there, so nothing failed (exit 0)."""
