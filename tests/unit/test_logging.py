"""Log lines are JSON off a terminal and never carry secrets or message bodies."""

from __future__ import annotations

import io
import json

from inbox_daemon.logging import configure, get_logger


def test_json_lines_redact_secrets_and_bodies() -> None:
    out = io.StringIO()
    configure("info", "auto", stream=out)
    log = get_logger("test")
    log.info("message stored", case="CAS-000001", message_id="<a@b>", password="hunter2",
             body_text="private words", api_token="xoxb-1")  # fmt: skip
    log.debug("not shown")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "message stored"
    assert record["case"] == "CAS-000001"
    assert record["message_id"] == "<a@b>"
    assert record["level"] == "info"
    assert "hunter2" not in lines[0]
    assert "private words" not in lines[0]
    assert "xoxb-1" not in lines[0]
    assert record["password"] == "[redacted]"
