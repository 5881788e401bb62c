"""Loop and noise flags: auto-replies, bounces, mailing lists, failed recipients, is_from_us."""

from __future__ import annotations

import importlib.util
from email.message import EmailMessage

import pytest

from inbox_daemon.channels.email.loops import failed_recipients, is_from_us
from inbox_daemon.channels.email.parse import parse_message
from inbox_daemon.messages import InboundMessage, MessageFlags


def parse(raw: bytes, our_addresses: tuple[str, ...] = ()) -> InboundMessage:
    return parse_message(
        raw, channel_mailbox="support", external_id="1", our_addresses=our_addresses
    )


def mail(
    subject: str = "Question about my order",
    *,
    sender: str = "Jane <jane@example.com>",
    headers: dict[str, str] | None = None,
    body: str = "Where is my parcel?\n",
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@shop.example"
    msg["Subject"] = subject
    msg["Message-ID"] = "<q1@example.com>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def flags(raw: bytes) -> MessageFlags:
    return parse(raw).flags


def test_ordinary_customer_mail_has_no_flags() -> None:
    assert flags(mail()) == MessageFlags()
    assert flags(mail()).automatic is False


# -- auto-replies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Auto-Submitted": "auto-generated (vacation)"},
        {"X-Autoreply": "yes"},
        {"X-Autorespond": "Vacation"},
        {"X-Auto-Response-Suppress": "All"},
        {"X-Auto-Response-Suppress": "DR, OOF, AutoReply"},
        {"Precedence": "bulk"},
        {"Precedence": "junk"},
        {"Precedence": "auto_reply"},
        {"X-Apple-Action": "VACATION"},
        {"X-POST-MessageClass": "9; Autoresponder"},
    ],
)
def test_auto_reply_headers(headers: dict[str, str]) -> None:
    found = flags(mail(headers=headers))
    assert found.auto_reply is True
    assert found.bounce is False
    assert found.mailing_list is False


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "no"},
        {"Auto-Submitted": "No (a human wrote this)"},
        {"X-Auto-Response-Suppress": "DR, RN, NRN"},
        {"X-Autoreply": "no"},
        {"Precedence": "first-class"},
    ],
)
def test_headers_that_do_not_mean_auto_reply(headers: dict[str, str]) -> None:
    assert flags(mail(headers=headers)).auto_reply is False


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Question about my order",
        "Out of the office until Monday",
        "Automatic reply: Question about my order",
        "Autoreply: Question",
        "Auto-Reply: Question",
        "Auto reply: Nyaan",
        "AutoRespons :Nyaan?",
        "Abwesenheitsnotiz: Ihre Anfrage",
        "Automatische Antwort: Ihre Anfrage",
        "Réponse automatique : Votre commande",
        "Respuesta automática: Su pedido",
        "Automatisch antwoord: Uw bestelling",
        "Risposta automatica: Ordine",
        "Resposta automática: Pedido",
        "Autosvar: Beställning",
        "[Ticket 12] Out of office",
        "自動応答: ご注文",
        "AUTO: Jane Doe is out of the office (returning 05/06/2024)",
    ],
)
def test_out_of_office_subjects_only_suppress_answers(subject: str) -> None:
    found = flags(mail(subject))
    # A subject alone never says that no person wrote the mail: it is taken in as usual and
    # only never answered automatically.
    assert (found.auto_reply, found.automatic) == (False, False)
    assert found.auto_subject is True
    assert found.no_automatic_answer is True


@pytest.mark.parametrize(
    "subject",
    [
        "Out of office printer will not print",
        "Automatic reply not working in Outlook, please help",
        "OOO calendar sync fails",
    ],
)
def test_a_customer_subject_that_looks_automatic_is_not_automatic(subject: str) -> None:
    found = flags(mail(subject))
    assert (found.auto_reply, found.automatic, found.auto_subject) == (False, False, True)


def test_an_automatic_subject_with_automatic_headers_is_an_auto_reply() -> None:
    found = flags(mail("Out of Office: Re: order", headers={"Auto-Submitted": "auto-replied"}))
    assert (found.auto_reply, found.auto_subject) == (True, False)


@pytest.mark.parametrize(
    "subject",
    [
        "Re: question about out of office hours",
        "Office supplies order",
        "Vacation request for June",
        "Automatic replies keep arriving from your shop",
        "Autumn collection",
        "Auto: Termin für die Reparatur",
        "Abwesenheit meines Kollegen",
    ],
)
def test_ordinary_subjects_are_not_auto_replies(subject: str) -> None:
    found = flags(mail(subject))
    assert (found.auto_reply, found.auto_subject) == (False, False)


def test_read_receipt_is_an_auto_reply_not_a_bounce() -> None:
    msg = EmailMessage()
    msg["From"] = "jane@example.com"
    msg["Subject"] = "Read: Question"
    msg.set_content("Your message was read.")
    msg.make_mixed()
    msg.replace_header(
        "Content-Type", 'multipart/report; report-type=disposition-notification; boundary="x"'
    )
    found = flags(msg.as_bytes())
    assert found.auto_reply is True
    assert found.bounce is False


# -- bounces ---------------------------------------------------------------------------------


def dsn(
    recipients: list[tuple[str, str]], *, sender: str = "MAILER-DAEMON@mx.example.net"
) -> bytes:
    """A multipart/report delivery-status bounce with one block per (recipient, action)."""
    blocks = ["Reporting-MTA: dns; mx.example.net\r\n"]
    for address, action in recipients:
        status = "5.1.1" if action == "failed" else "4.4.1"
        blocks.append(
            f"Final-Recipient: rfc822; {address}\r\nAction: {action}\r\nStatus: {status}\r\n"
        )
    report = "\r\n".join(blocks)
    return (
        f"From: Mail Delivery System <{sender}>\r\n"
        "To: support@shop.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nI could not deliver your message.\r\n"
        f"--B\r\nContent-Type: message/delivery-status\r\n\r\n{report}\r\n"
        "--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: support@shop.example\r\n"
        "To: gone@example.org\r\nSubject: Your case 77\r\nMessage-ID: <case-77@shop.example>\r\n"
        "\r\nHello\r\n--B--\r\n"
    ).encode()


def test_dsn_is_a_bounce_with_failed_recipients() -> None:
    raw = dsn(
        [
            ("gone@Example.ORG", "failed"),
            ("<slow@example.net>", "delayed"),
            ("also-gone@example.com", "failed"),
        ]
    )
    msg = parse(raw)
    assert msg.flags.bounce is True
    assert msg.flags.failed_recipients == ("gone@example.org", "also-gone@example.com")
    assert msg.text == "I could not deliver your message."
    assert [a.content_type for a in msg.attachments] == [
        "message/delivery-status",
        "message/rfc822",
    ]
    assert msg.attachments[1].filename == "Your case 77.eml"


def test_dsn_with_only_delayed_recipients_has_none_failed() -> None:
    assert flags(dsn([("slow@example.net", "delayed")])).failed_recipients == ()


@pytest.mark.parametrize(
    "sender",
    [
        "MAILER-DAEMON@mx.example.net",
        "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        "postmaster@example.org",
        "Postmaster <PostMaster@Example.org>",
        "MAILER-DAEMON <>",
    ],
)
def test_daemon_senders_are_bounces(sender: str) -> None:
    assert flags(mail("Mail delivery failed", sender=sender)).bounce is True


def test_x_failed_recipients_is_a_bounce_and_lists_them() -> None:
    found = flags(mail(headers={"X-Failed-Recipients": "a@X.example, B@y.example"}))
    assert found.bounce is True
    assert found.failed_recipients == ("a@x.example", "B@y.example")


def test_bounce_subject_counts_only_with_a_null_envelope_sender() -> None:
    subject = "Undelivered Mail Returned to Sender"
    assert flags(mail(subject, headers={"Return-Path": "<>"})).bounce is True
    customer = mail(subject, headers={"Return-Path": "<jane@example.com>"})
    assert flags(customer).bounce is False


def test_failed_recipients_from_parsed_fields_directly() -> None:
    blocks = [
        {"reporting-mta": "dns; mx"},
        {"original-recipient": "rfc822;<orig@example.com>", "status": "5.0.0"},
        {"final-recipient": "rfc822; later@example.com", "action": "delivered"},
    ]
    assert failed_recipients({}, blocks) == ("orig@example.com",)


@pytest.mark.skipif(
    importlib.util.find_spec("flufl.bounce") is None, reason="flufl.bounce not installed"
)
def test_text_bounce_without_dsn_uses_flufl_bounce() -> None:
    body = (
        "Hi. This is the qmail-send program at mx.example.net.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        "<gone@example.org>:\n550 5.1.1 user unknown\n\n"
        "--- Below this line is a copy of the message.\n\n"
        "Message-ID: <case-77@shop.example>\nTo: gone@example.org\n"
    )
    found = flags(mail("failure notice", sender="MAILER-DAEMON@mx.example.net", body=body))
    assert found.bounce is True
    assert found.failed_recipients == ("gone@example.org",)


# -- mailing lists ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"List-Id": "Riak Users <riak-users.lists.basho.com>"},
        {"List-Unsubscribe": "<mailto:leave@lists.example>"},
        {"Precedence": "list"},
        {"Mailing-List": "contact nyaan-help@neko.example.org; run by ezmlm"},
    ],
)
def test_mailing_list_markers(headers: dict[str, str]) -> None:
    found = flags(mail(headers=headers))
    assert found.mailing_list is True
    assert found.auto_reply is False


def test_bulk_list_mail_is_both_auto_reply_and_list() -> None:
    found = flags(mail(headers={"Precedence": "bulk", "List-Id": "<news.shop.example>"}))
    assert (found.auto_reply, found.mailing_list, found.bounce) == (True, True, False)


# -- our own addresses -----------------------------------------------------------------------


def test_is_from_us() -> None:
    ours = ("Support@Shop.example", "@helpdesk.example")
    assert is_from_us(parse(mail(sender="support@shop.EXAMPLE")), ours) is True
    assert is_from_us(parse(mail(sender="Bot <noreply@helpdesk.example>")), ours) is True
    assert is_from_us(parse(mail(sender="jane@example.com")), ours) is False
    assert is_from_us(parse(mail(sender="support@shop.example.evil")), ours) is False
    assert is_from_us(parse(mail(sender="support@shop.example")), ()) is False


def test_mail_from_our_own_address_is_flagged_from_us() -> None:
    raw = mail(sender="Support <support@shop.example>")
    ours = parse(raw, our_addresses=("support@shop.example",)).flags
    # never answered, but not an automatic reply: an agent may have written it
    assert (ours.from_us, ours.auto_reply, ours.no_automatic_answer) == (True, False, True)
    assert parse(raw).flags.from_us is False
