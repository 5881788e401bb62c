"""Our Message-IDs are spelled in one place."""

from __future__ import annotations

import re

from inbox_daemon.messages import new_message_id


def test_a_message_id_names_the_case_and_is_unique() -> None:
    first = new_message_id("CAS-000123", "help.example")
    assert re.fullmatch(r"<[0-9a-f]{24}\.cas-000123@help\.example>", first)
    assert new_message_id("CAS-000123", "help.example") != first
