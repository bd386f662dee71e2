"""The app's exception hierarchy.

Services raise these; pages and the CLI catch ``AppError`` and show its message,
which always says what happened and, where there is one, what to do next.
"""

from __future__ import annotations


class AppError(Exception):
    """Base class for every error the app expects and explains to the user."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class ConfigError(AppError):
    """A profile (YAML) is unreadable or does not match the schema."""


class ModelUnavailable(AppError):
    """A model, engine, package or server the user asked for is not usable here."""


class BadInput(AppError):
    """An uploaded file or argument cannot be processed (names the file)."""


class StorageError(AppError):
    """A data file could not be written or read."""


class GenerationError(AppError):
    """A model failed while producing an answer (out of memory, server error, ...)."""
