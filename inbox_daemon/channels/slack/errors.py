"""Reading Slack's errors: the error code of a failed Web API call, whatever its body was."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

__all__ = ["error_code"]


def error_code(exc: SlackApiError) -> str:
    """Slack's ``error`` (``ratelimited``, ``channel_not_found``…), else ``HTTP <status>``.

    A proxy or an outage may answer plain text or HTML instead of Slack's JSON.
    """
    response = exc.response
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None)
    return f"HTTP {status}" if status is not None else str(exc)
