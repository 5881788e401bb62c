"""The case document, pure: what reaches the template, escaping, time zones, template errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from inbox_daemon import document
from inbox_daemon.cases.accounts import Account
from inbox_daemon.cases.enums import Status
from inbox_daemon.cases.model import Case
from inbox_daemon.errors import ConfigError
from inbox_daemon.service import CaseView
from inbox_daemon.store.tables import ActivityRow

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")
_ids = iter(range(1, 10_000))


def activity(kind: str, direction: str, text: str, minutes: int, **extra: object) -> ActivityRow:
    at = T0 + timedelta(minutes=minutes)
    return ActivityRow(
        id=next(_ids), case_id=1, kind=kind, direction=direction,
        state=str(extra.pop("state", "completed")), subject=str(extra.pop("subject", "")),
        body_text=text, body_new=extra.pop("body_new", None),
        automatic=bool(extra.pop("automatic", False)),
        delivery_state=extra.pop("delivery_state", None), actor="user:alice",
        created_at=at, updated_at=at,
    )  # fmt: skip


def view(
    activities: list[ActivityRow] | None = None,
    *,
    zone: ZoneInfo = UTC_ZONE,
    configured: Account | None = None,
    **fields: object,
) -> CaseView:
    case = Case(
        number="CAS-000042",
        title=str(fields.pop("title", "Printer smokes")),
        status=Status(str(fields.pop("status", "resolved"))),
        contact_email="ann@acme.example",
        contact_name="Ann Example",
        created_at=T0,
        resolved_at=T0 + timedelta(hours=3),
        resolution=str(fields.pop("resolution", "Replaced the fuser.")),
        **fields,  # type: ignore[arg-type]
    )
    return CaseView(case, activities or [], [], zone=zone, account=configured)


def default_template() -> document.DocumentTemplate:
    return document.read_template(Path("/nonexistent-folder"))  # the packaged one


def render(v: CaseView, template: document.DocumentTemplate | None = None) -> str:
    return document.render_html(v, template or default_template(), now=T0 + timedelta(days=1))


CONVERSATION = [
    activity("email", "incoming", "It smokes.\n\n> quoted history", 0, body_new="It smokes."),
    activity("email", "outgoing", "Please unplug it.", 5, delivery_state="sent"),
    activity("note", "internal", "SECRET-NOTE customer is difficult", 6),
    activity("task", "internal", "", 7, subject="SECRET-TASK call back", state="open"),
    activity("phone_call", "incoming", "SECRET-CALL he shouted", 8),
    activity("phone_call", "outgoing", "SECRET-CALL-OUT left a voicemail", 9),
    activity("email", "incoming", "SECRET-AUTO I am out of office", 10, automatic=True),
    activity("email", "outgoing", "SECRET-FAILED never arrived", 11, delivery_state="failed"),
    activity("slack_message", "incoming", "Still smoking on Slack.", 12),
    activity("message", "outgoing", "A technician is on the way.", 13, delivery_state="pending"),
]


def test_only_the_public_conversation_reaches_the_document() -> None:
    public = document.public_conversation(list(reversed(CONVERSATION)))
    assert [a.body_new or a.body_text for a in public] == [
        "It smokes.", "Please unplug it.", "Still smoking on Slack.", "A technician is on the way.",
    ]  # fmt: skip
    html = render(view(CONVERSATION))
    assert "SECRET" not in html
    assert "quoted history" not in html  # a customer's mail without what it quotes
    for text in ("It smokes.", "Please unplug it.", "A technician is on the way."):
        assert text in html
    assert html.index("It smokes.") < html.index("Please unplug it.") < html.index("on the way")


def test_hostile_customer_text_is_shown_as_text() -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    html = render(view([activity("email", "incoming", hostile, 0)], title=f"Help {hostile}"))
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_times_are_shown_in_the_cases_zone_and_say_which() -> None:
    berlin = render(view(zone=ZoneInfo("Europe/Berlin")))
    assert "2026-03-02 09:00 CET" in berlin  # created 08:00 UTC
    assert "2026-03-02 12:00 CET" in berlin  # resolved
    assert "time zone Europe/Berlin" in berlin
    utc = render(view())
    assert "2026-03-02 08:00 UTC" in utc
    assert "time zone UTC" in utc


def test_the_account_hook() -> None:
    acme = Account(id="acme", name="Acme Corp", tier="gold")
    assert "Acme Corp" in render(view(configured=acme, account="acme"))
    gone = render(view(account="oldco"))  # no longer in rules.yaml: its id is still shown
    assert "oldco" in gone
    assert "Organisation" not in render(view())


def test_an_admins_template_gets_the_context(tmp_path: Path) -> None:
    (tmp_path / document.TEMPLATE_NAME).write_text(
        "{{ case.number }}|{{ customer.name }}|{{ account.name if account else 'none' }}|"
        "{{ time_zone }}|{% for m in conversation %}{{ m.direction }}:{{ m.text }};{% endfor %}"
    )
    template = document.read_template(tmp_path)
    assert template.path == tmp_path / document.TEMPLATE_NAME
    out = render(view(CONVERSATION[:3]), template)
    assert out == "CAS-000042|Ann Example|none|UTC|incoming:It smokes.;outgoing:Please unplug it.;"


@pytest.mark.parametrize(
    ("source", "line", "said"),
    [
        ("<p>\n<p>\n{% if %}\n", 3, "Expected an expression"),
        ("<p>\n{{ case.nope }}\n", 2, "has no attribute 'nope'"),
        ("<p>{{ case.number }}\n{% for x in case.title %}\n{{ x.__class__.__mro__ }}\n"
         "{% endfor %}", 3, "unsafe"),
        ("{{ 1 // 0 }}", 1, "by zero"),
    ],
)  # fmt: skip
def test_a_broken_template_is_one_line_naming_file_and_line(
    tmp_path: Path, source: str, line: int, said: str
) -> None:
    path = tmp_path / document.TEMPLATE_NAME
    path.write_text(source)
    with pytest.raises(ConfigError) as caught:
        render(view(), document.read_template(tmp_path))
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: case document template: ")
    assert said in message
    assert "\n" not in message


def test_a_template_that_is_not_text_is_refused(tmp_path: Path) -> None:
    (tmp_path / document.TEMPLATE_NAME).write_bytes(b"\xff\xfe<p>")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        document.read_template(tmp_path)
