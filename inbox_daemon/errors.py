"""The exception hierarchy of inbox-daemon (see docs/ARCHITECTURE.md).

Each boundary catches these in one place: per message in a channel loop, per row in the outbox
worker, once in the CLI. Everything else lets them rise.
"""

from __future__ import annotations


class InboxError(Exception):
    """Base of every error the daemon raises on purpose."""


class ConfigError(InboxError):
    """The configuration is missing or invalid; the CLI exits non-zero."""


class RulesError(ConfigError):
    """rules.yaml is invalid; carries the file, line and column of the problem."""

    def __init__(self, message: str, *, file: str = "", line: int = 0, column: int = 0) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.reason = message
        where = file
        if line:
            where = f"{file}:{line}:{column}" if column else f"{file}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


class SchemaError(ConfigError):
    """The database schema does not match this version of inbox-daemon."""


class DatabaseUnavailable(InboxError):
    """The database cannot be reached now (refused, unknown host, no such database, login
    refused): the command may work later; the CLI exits 75 (EX_TEMPFAIL)."""


class NotFoundError(InboxError):
    """A case, user, team or queue that was named does not exist."""


class ChannelError(InboxError):
    """A channel failed; ``channel`` names it."""

    def __init__(self, channel: str, message: str) -> None:
        self.channel = channel
        super().__init__(f"{channel}: {message}")


class ChannelAuthError(ChannelError):
    """Authentication failed: permanent until reconfigured."""


class ChannelUnavailable(ChannelError):
    """Transient: back off and retry."""


class DeliveryError(ChannelError):
    """An outgoing message could not be delivered."""


class TransientDeliveryError(DeliveryError):
    """Delivery failed for now; retry later."""


class PermanentDeliveryError(DeliveryError):
    """Delivery will never succeed; mark the activity failed."""


class RejectedMessage(InboxError):
    """An incoming message is kept in quarantine with this reason."""


class CaseRuleError(InboxError):
    """A change to a case breaks a rule of the case lifecycle."""


class TransitionError(CaseRuleError):
    """An illegal status transition; names both statuses."""

    def __init__(self, from_status: str, to_status: str, detail: str = "") -> None:
        self.from_status = from_status
        self.to_status = to_status
        msg = f"cannot change status from {from_status!s} to {to_status!s}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class ReadOnlyCaseError(CaseRuleError):
    """The case is resolved, closed or cancelled and cannot be edited."""


class OpenActivitiesError(CaseRuleError):
    """A case cannot be resolved while it has open activities (``count`` of them)."""

    def __init__(self, message: str, count: int = 0) -> None:
        super().__init__(message)
        self.count = count


class PickedByOther(CaseRuleError):
    """Pick refused: another agent is working the case (a forced pick takes it over)."""

    def __init__(self, message: str, worker: str) -> None:
        super().__init__(message)
        self.worker = worker
