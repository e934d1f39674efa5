"""Every exception the package raises on purpose, in one tree.

    DistributorError
    └── UserError            bad input from a person: one line on stderr, exit status 2
        ├── ConfigError      a config key is missing, unknown or of the wrong type
        ├── InputError       a statement file, CSV file, time or id is not as expected
        └── StateError       the statement is not in a state that allows the request

Delivery problems are not exceptions: a channel reports one outcome per target from the fixed vocabulary
``outcomes.Result`` (sent, retry, failed, transport, refused, cancelled), with the remote reply as its detail.
"""

from __future__ import annotations


class DistributorError(Exception):
    """Base of every deliberate error."""


class UserError(DistributorError):
    """A person's mistake. ``where`` names the file, line, key or id."""

    def __init__(self, message: str, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class ConfigError(UserError):
    pass


class InputError(UserError):
    pass


class StateError(UserError):
    pass


def one_line(text: object) -> str:
    """A message from elsewhere (a driver, a library) on one line."""
    return " ".join(str(text).split())


def checked_text(value: str, where: str, max_length: int) -> str:
    """A person's text bound for a column: no NUL byte (PostgreSQL refuses it), no longer than the column."""
    if "\x00" in value:
        raise InputError("contains a NUL byte", where=where)
    if len(value) > max_length:
        raise InputError(f"is {len(value)} characters long; at most {max_length} fit", where=where)
    return value
