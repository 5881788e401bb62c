"""parse_message: bodies, charsets, MIME structure and attachments (mails built in code)."""

from __future__ import annotations

import base64

import pytest
from email_helpers import mail, parse

from inbox_daemon.channels.email.mime import sanitize_filename
from inbox_daemon.channels.email.parse import parse_message

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


MIME_HEAD = "From: a@example.com\nSubject: x\nMIME-Version: 1.0\n"
MIXED_HEAD = MIME_HEAD + 'Content-Type: multipart/mixed; boundary="b"'


def raw_mail(headers: str, body: bytes = b"Hello\r\n") -> bytes:
    """A message from literal header lines, for encodings EmailMessage would rewrite."""
    head = headers.strip("\n").replace("\n", "\r\n").encode("latin-1")
    return head + b"\r\n\r\n" + body


# -- bodies and charsets ---------------------------------------------------------------------


def test_text_plain_is_preferred_over_html() -> None:
    msg = mail(body="Plain version\n")
    msg.add_alternative("<p>HTML <b>version</b></p>", subtype="html")
    parsed = parse(msg.as_bytes())
    assert parsed.text == "Plain version\n"
    assert parsed.html == "<p>HTML <b>version</b></p>\n"


def test_html_only_mail_gets_text_from_html() -> None:
    msg = mail()
    msg.set_content(
        "<html><head><title>T</title><style>p{color:red}</style><script>alert(1)</script></head>"
        "<body><p>Hello &amp; welcome&nbsp;to   our<br>shop</p><div>Line two</div>"
        "<ul><li>one</li><li>two</li></ul><p>&euro;5 &lt;b&gt;</p></body></html>",
        subtype="html",
    )
    parsed = parse(msg.as_bytes())
    assert parsed.text == "Hello & welcome to our\nshop\n\nLine two\n\n- one\n- two\n\n€5 <b>"
    assert parsed.html is not None
    assert parsed.html.startswith("<html>")


@pytest.mark.parametrize(
    ("charset", "payload", "expected"),
    [
        ("us-ascii", "Café déjà vu".encode(), "Café déjà vu"),
        ("us-ascii", b"caf\xe9 \x93quoted\x94", "café “quoted”"),
        ("iso-8859-1", "naïve".encode(), "naïve"),
        ("unknown-8bit", b"Stra\xdfe", "Straße"),
        ("x-user-defined", "Привет".encode(), "Привет"),
        ("ks_c_5601-1987", "안녕하세요".encode("cp949"), "안녕하세요"),
        ("gb2312", "镕基".encode("gbk"), "镕基"),
        ("uft-8", "Grüße".encode(), "Grüße"),
        ("iso-2022-jp", "日本語のテスト".encode("euc-jp"), "日本語のテスト"),
        (
            "utf-8",
            "Grüße \xff ok".encode("latin-1").replace(b"Gr\xfc\xdfe", "Grüße".encode()),
            "Grüße \ufffd ok",
        ),
        ("utf-8", b"caf\xe9 cr\xe8me", "café crème"),
    ],
)
def test_mislabelled_and_unknown_charsets_decode(
    charset: str, payload: bytes, expected: str
) -> None:
    headers = f"From: a@example.com\nSubject: x\nContent-Type: text/plain; charset={charset}"
    raw = raw_mail(headers + "\nContent-Transfer-Encoding: 8bit", payload)
    assert parse(raw).text == expected


def test_nul_bytes_and_crlf_are_removed_from_text() -> None:
    raw = raw_mail("From: a@example.com\nSubject: x", b"line\x00one\r\nline two\rthree\r\n")
    assert parse(raw).text == "lineone\nline two\nthree\n"


def test_multipart_with_missing_start_boundary_is_recovered() -> None:
    raw = raw_mail(
        MIME_HEAD + 'Content-Type: multipart/alternative; boundary="declared"',
        b"--actual\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Recovered text\r\n--actual--\r\n",
    )
    assert parse(raw).text == "Recovered text"


def test_parts_after_the_closing_boundary_are_recovered() -> None:
    raw = raw_mail(
        MIXED_HEAD,
        b"--b\r\nContent-Type: text/plain\r\n\r\nBody\r\n--b--\r\n"
        b"--b\r\nContent-Type: application/pdf; name=late.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n",
    )
    msg = parse(raw)
    assert msg.text == "Body"
    assert [(a.filename, a.content) for a in msg.attachments] == [("late.pdf", b"%PDF-")]


# -- attachments -----------------------------------------------------------------------------


def test_attachment_with_non_ascii_filename() -> None:
    msg = mail()
    msg.add_attachment(
        b"%PDF-1.4 data", maintype="application", subtype="pdf", filename="Rechnung März ✓.pdf"
    )
    (att,) = parse(msg.as_bytes()).attachments
    assert att.filename == "Rechnung März ✓.pdf"
    assert (att.content_type, att.size, att.content) == ("application/pdf", 13, b"%PDF-1.4 data")
    assert att.inline is False
    assert att.content_id is None


def test_encoded_word_filename_is_decoded() -> None:
    raw = raw_mail(
        MIXED_HEAD,
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
        b'Content-Type: application/octet-stream; name="=?utf-8?B?w6R0c2No?=.bin"\r\n'
        b'Content-Disposition: attachment; filename="=?utf-8?B?w6R0c2No?=.bin"\r\n'
        b"\r\nxyz\r\n--b--\r\n",
    )
    (att,) = parse(raw).attachments
    assert (att.filename, att.content) == ("ätsch.bin", b"xyz")


def test_raw_8bit_filenames_are_decoded() -> None:
    raw = raw_mail(
        MIXED_HEAD,
        b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n"
        b'Content-Type: application/pdf; name="Rechnung M\xc3\xa4rz.pdf"\r\n'
        b'Content-Disposition: attachment; filename="Rechnung M\xc3\xa4rz.pdf"\r\n\r\n%PDF\r\n'
        b"--b\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="Fa\xe7ture.pdf"\r\n\r\n%PDF\r\n--b--\r\n',
    )
    assert [a.filename for a in parse(raw).attachments] == ["Rechnung März.pdf", "Façture.pdf"]


def test_nested_rfc822_becomes_an_eml_attachment_and_not_body() -> None:
    inner = mail("Original question", "inner body text\n", sender="bob@example.org")
    outer = mail("Fwd: Original question", "See the forwarded mail.\n")
    outer.add_attachment(inner)
    msg = parse(outer.as_bytes())
    assert msg.text == "See the forwarded mail.\n"
    (att,) = msg.attachments
    assert (att.filename, att.content_type) == ("Original question.eml", "message/rfc822")
    assert att.content is not None
    assert b"Subject: Original question" in att.content
    assert b"inner body text" in att.content
    assert att.size == len(att.content)


def test_inline_cid_image() -> None:
    msg = mail(body="see logo")
    msg.add_alternative('<p>Logo: <img src="cid:logo@shop"></p>', subtype="html")
    html_part = msg.get_payload()[1]
    html_part.add_related(PNG, maintype="image", subtype="png", cid="<logo@shop>")
    (att,) = parse(msg.as_bytes()).attachments
    assert att.content_id == "logo@shop"
    assert att.inline is True
    assert (att.content_type, att.content, att.size) == ("image/png", PNG, len(PNG))
    assert att.filename == "attachment-1.png"


def test_named_text_part_without_disposition_is_body_when_nothing_else_is() -> None:
    raw = raw_mail(
        MIXED_HEAD,
        b'--b\r\nContent-Type: text/plain; name="notice.txt"\r\n\r\nThe notice\r\n--b--\r\n',
    )
    msg = parse(raw)
    assert msg.text == "The notice"
    assert [a.filename for a in msg.attachments] == ["notice.txt"]


@pytest.mark.parametrize(
    ("name", "ctype", "expected"),
    [
        ("../../etc/passwd", "text/plain", "passwd"),
        ("C:\\Users\\evil\\invoice.exe", "application/octet-stream", "invoice.exe"),
        ("re\x00port\x07.pdf", "application/pdf", "re port .pdf"),
        ("doc\u202egpj.exe", "application/octet-stream", "doc gpj.exe"),
        ("..", "application/pdf", "attachment-3.pdf"),
        ("", "image/png", "attachment-3.png"),
        (None, "message/rfc822", "attachment-3.eml"),
        (None, "application/x-unknown-thing", "attachment-3.bin"),
    ],
)
def test_sanitize_filename(name: str | None, ctype: str, expected: str) -> None:
    assert sanitize_filename(name, ctype, 3) == expected


def test_overlong_filename_keeps_its_extension() -> None:
    name = sanitize_filename("x" * 500 + ".pdf", "application/pdf", 1)
    assert len(name) == 200
    assert name.endswith("x.pdf")


DSN = (
    b"From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\n"
    b"To: support@ours.example\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"Message-ID: <dsn-1@mx.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
    b"--B\r\nContent-Type: text/plain\r\n\r\nI could not deliver your message.\r\n"
    b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Reporting-MTA: dns; mx.example\r\n\r\n"
    b"Final-Recipient: rfc822; ann@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    b"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    b"From: support@ours.example\r\nTo: ann@customer.example\r\n"
    b"Message-ID: <ours-1.cas-000001@ours.example>\r\nSubject: Re: x [CAS-000001]\r\n"
    b"--B--\r\n"
)


def test_a_bounce_answers_the_message_it_returns() -> None:
    msg = parse_message(DSN, channel_mailbox="support", external_id="1")
    assert msg.flags.bounce
    assert msg.flags.failed_recipients == ("ann@customer.example",)
    assert msg.references == ("<ours-1.cas-000001@ours.example>",)
    assert "<ours-1.cas-000001@ours.example>" in msg.thread_ids


def test_a_forwarded_mail_does_not_thread_to_what_it_carries() -> None:
    raw = (
        b"From: Ann <ann@customer.example>\r\nTo: support@ours.example\r\nSubject: Fwd: x\r\n"
        b"Message-ID: <fwd-1@customer.example>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
        b"--B\r\nContent-Type: message/rfc822\r\n\r\n"
        b"From: bob@else.example\r\nMessage-ID: <inner@else.example>\r\nSubject: x\r\n\r\nhi\r\n"
        b"--B--\r\n"
    )
    msg = parse_message(raw, channel_mailbox="support", external_id="2")
    assert not msg.flags.bounce
    assert msg.thread_ids == ()
