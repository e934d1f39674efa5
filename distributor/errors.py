"""Every exception the package raises on purpose, in one tree.

    DistributorError
    ├── UserError            bad input from a person: one line on stderr, exit status 2
    │   ├── ConfigError      a config key is missing, unknown or of the wrong type
    │   ├── InputError       a statement file, CSV file, time or id is not as expected
    │   └── StateError       the statement is not in a state that allows the request
    └── DeliveryError        a channel could not deliver; carries the remote reply
        ├── TransientError   try again later (4xx SMTP, 429/5xx HTTP, timeouts, dropped connections)
        └── PermanentError   retrying cannot help (5xx SMTP, other 4xx HTTP)
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


class DeliveryError(DistributorError):
    """A delivery failed. ``reply`` is what the remote side said (SMTP reply, HTTP body)."""

    def __init__(self, message: str, reply: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.reply = reply
        self.retry_after = retry_after


class TransientError(DeliveryError):
    pass


class PermanentError(DeliveryError):
    pass
