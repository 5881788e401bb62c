"""Every real mail of the shared corpus goes through parse_message: parsed or RejectedMessage.

The corpus lives in ``shared/corpus`` beside the repository (see its SOURCES.md). All files
count except ``slack/`` and the .md/.tsv/.sha256 files; the mbox files of
``sisimai-set-of-emails/mailbox/`` are split into their messages. The counts below were taken
once and are asserted exactly, so that any change in what parses, what is rejected or what is
flagged shows up here and is looked at.
"""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from inbox_daemon.channels.email.parse import parse_message
from inbox_daemon.errors import RejectedMessage
from inbox_daemon.messages import Address, InboundMessage

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
SKIPPED_SUFFIXES = {".md", ".tsv", ".sha256"}

Results = dict[str, InboundMessage | RejectedMessage]


def _corpus_items(root: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix in SKIPPED_SUFFIXES:
            continue
        rel = path.relative_to(root)
        if rel.parts[0] == "slack":
            continue
        if rel.parts[:2] == ("sisimai-set-of-emails", "mailbox"):
            box = mailbox.mbox(path, create=False)
            try:
                for index, key in enumerate(box.keys()):
                    yield f"{rel.as_posix()}#{index}", box.get_bytes(key)
            finally:
                box.close()
        else:
            yield rel.as_posix(), path.read_bytes()


@pytest.fixture(scope="module")
def results() -> Results:
    if not CORPUS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the mail corpus is missing in CI: {CORPUS}")
        pytest.skip(f"mail corpus not available at {CORPUS}")
    found: Results = {}
    for name, raw in _corpus_items(CORPUS):
        try:
            found[name] = parse_message(raw, channel_mailbox="corpus", external_id=name)
        except RejectedMessage as exc:  # anything else is a test failure
            found[name] = exc
    return found


def _parsed(results: Results) -> dict[str, InboundMessage]:
    return {k: v for k, v in results.items() if isinstance(v, InboundMessage)}


def test_every_mail_parses_or_is_rejected(results: Results) -> None:
    parsed = _parsed(results)
    rejected = {k: v for k, v in results.items() if isinstance(v, RejectedMessage)}
    assert len(results) == 190  # 152 files + 38 messages of the two mbox files
    assert len(parsed) == 167
    assert len(rejected) == 23
    # The 22 header-less email_reply_parser bodies and the Outlook .msg (OLE2) file.
    assert all(k.startswith("github-email_reply_parser/") for k in rejected if "outlook" not in k)
    assert "spamscope-mail-parser/mail_outlook_1" in rejected
    assert "Outlook .msg" in str(rejected["spamscope-mail-parser/mail_outlook_1"])


def test_flag_counts(results: Results) -> None:
    parsed = _parsed(results).values()
    assert sum(m.flags.bounce for m in parsed) == 124
    assert sum(m.flags.auto_reply for m in parsed) == 71
    assert sum(m.flags.mailing_list for m in parsed) == 6
    assert sum(len(m.attachments) for m in parsed) == 215
    assert sum((m.message_id or "").endswith("@inbox-daemon.invalid>") for m in parsed) == 19


def test_sisimai_bounces_are_flagged(results: Results) -> None:
    sisimai = {
        k: v
        for k, v in _parsed(results).items()
        if k.startswith("sisimai-set-of-emails/") and "/not/" not in k
    }
    assert len(sisimai) == 130
    bounces = [m for m in sisimai.values() if m.flags.bounce]
    # 130 minus the 6 RFC 3834 auto-replies = 124 bounce mails; 121 are recognised today.
    assert len(bounces) >= 118
    with_recipients = [m for m in bounces if m.flags.failed_recipients]
    assert len(with_recipients) >= 85  # from DSN parts and X-Failed-Recipients alone
    for name in ("rfc3834-01", "rfc3834-02", "rfc3834-03", "rfc3834-04", "rfc3834-05"):
        message = sisimai[f"sisimai-set-of-emails/maildir/bsd/{name}.eml"]
        assert message.flags.auto_reply, name
        assert not message.flags.bounce, name


def test_not_bounces_are_not_bounces(results: Results) -> None:
    parsed = _parsed(results)
    for name in ("is-not-bounce-01.eml", "is-not-bounce-02.eml"):
        assert parsed[f"sisimai-set-of-emails/maildir/not/{name}"].flags.automatic is False


SAMPLES = {
    "django-helpdesk/utf-nondecodable.eml": (
        "Fwd: Cyklozaměstnavatel - změna vyhodnocení",
        Address(email="john.smith@example.cz", name="John Smith"),
    ),
    "django-helpdesk/quoted_printable.eml": (
        "Český test",
        Address(email="tim.thelion@gmail.com", name="Tim hobbs"),
    ),
    "nodemailer-mailparser/nodemailer.eml": (
        "Nodemailer is unicode friendly ✔ (1476358788189)",
        Address(email="andris@kreata.ee", name="Andris Kreata"),
    ),
    "sisimai-set-of-emails/maildir/bsd/rfc3834-06.eml": (
        "AutoRespons :Nyaan?",
        Address(email="noreply@example.com"),
    ),
    "sisimai-set-of-emails/maildir/bsd/lhost-kddi-01.eml": (
        "メールエラー通知",
        Address(email="no-reply@x0000000000000.dion.ne.jp"),
    ),
    "sisimai-set-of-emails/maildir/bsd/lhost-yandex-01.eml": (
        "Недоставленное сообщение",
        Address(email="mailer-daemon@yandex.ru"),
    ),
    "sisimai-set-of-emails/maildir/mac/lhost-postfix-01.eml": (
        "Undelivered Mail Returned to Sender",
        Address(email="MAILER-DAEMON@p351355.pool.example.ne.jp", name="Mail Delivery System"),
    ),
    "spamscope-mail-parser/mail_test_12": (
        "代开各地增值税发票",
        Address(email="baoguan@hotmail.com", name="张先生"),
    ),
    "spamscope-mail-parser/mail_test_18": (
        "Test for Comma and Name Bugs",
        Address(email="comma.name@example.com", name="LastßlName, FirstName"),
    ),
    "spamscope-mail-parser/mail_test_19": (
        "Test email with email address as display name",
        Address(email="bob@example.com", name="alice@example.com"),
    ),
    "spamscope-mail-parser/mail_test_5": (
        "Je prépare mon été zéro complexe !",
        Address(email="contact@carlance.fr", name="Marina de Carlance"),
    ),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_subjects_and_senders(results: Results, name: str) -> None:
    message = results[name]
    assert isinstance(message, InboundMessage)
    assert (message.subject, message.sender) == SAMPLES[name]


def test_sample_details(results: Results) -> None:
    parsed = _parsed(results)
    nodemailer = parsed["nodemailer-mailparser/nodemailer.eml"]
    gif = next(a for a in nodemailer.attachments if a.content_type == "image/gif")
    assert (gif.filename, gif.size) == ("nyan cat ✔.gif", 29361)
    assert gif.content is not None
    assert gif.content.startswith(b"GIF8")
    dsn = parsed["nodemailer-mailparser/delivery-status.eml"]
    assert dsn.flags.bounce is True
    assert dsn.flags.failed_recipients == ("xxxx@xxxx.com",)
    mac = parsed["sisimai-set-of-emails/maildir/mac/rfc3464-01.eml"]
    bsd = parsed["sisimai-set-of-emails/maildir/bsd/rfc3464-01.eml"]
    assert (
        mac.flags.failed_recipients
        == bsd.flags.failed_recipients
        == ("userunknown@bouncehammer.jp",)
    )
    assert mac.text == bsd.text  # bare-CR line endings parse like LF ones
    malformed = parsed["spamscope-mail-parser/mail_malformed_1"]
    assert [a.filename for a in malformed.attachments] == ["20160523_916527.jpg_.zip"]


def test_nameless_report_parts_are_named_from_their_description(results: Results) -> None:
    # Postfix, SES and Barracuda label their report parts; they were all "attachment-1.txt".
    parsed = _parsed(results)
    names = {
        name: [a.filename for a in parsed[name].attachments]
        for name in (
            "sisimai-set-of-emails/maildir/bsd/lhost-postfix-01.eml",
            "sisimai-set-of-emails/maildir/bsd/lhost-receivingses-01.eml",
            "sisimai-set-of-emails/maildir/bsd/lhost-barracuda-01.eml",
            "nodemailer-mailparser/delivery-status.eml",
        )
    }
    assert list(names.values()) == [
        ["Delivery report.txt"],
        ["Delivery Status Notification.txt", "Undelivered Message.txt"],
        ["Delivery error report.txt", "Undelivered-message headers.txt"],
        [
            "Delivery Status Notification.txt",
            "Example Subject.eml",
        ],  # an attached mail: its subject
    ]
