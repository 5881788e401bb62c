"""spool.parse_file: a mail read from a file, large base64 attachments decoded into spool
files, must come out as parse_message makes it of the same bytes (mails built in code)."""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import gc
import hashlib
import io
import random
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox_daemon.channels.email.parse import parse_message
from inbox_daemon.channels.email.spool import (
    SPOOL_MAIL,
    _Base64File,
    _QuotedPrintableFile,
    parse_file,
    should_spool,
    spool_directory,
)
from inbox_daemon.errors import RejectedMessage
from inbox_daemon.messages import Attachment, InboundMessage

THRESHOLD = 64 * 1024
HEAD = (
    "From: Jane Customer <jane@customer.example>\n"
    "To: support@example.com\n"
    "Subject: The logs you asked for\n"
    "Message-ID: <spool-1@customer.example>\n"
    "Date: Mon, 03 Mar 2025 09:00:00 +0000\n"
    "MIME-Version: 1.0\n"
)


def b64(data: bytes, width: int = 76) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return "\n".join(encoded[i : i + width] for i in range(0, len(encoded), width))


def part(ctype: str, body: str, *, cte: str = "base64", extra: str = "") -> str:
    return f"Content-Type: {ctype}\nContent-Transfer-Encoding: {cte}\n{extra}\n{body}\n"


def multipart(subtype: str, boundary: str, parts: list[str], *, close: bool = True) -> str:
    out = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\nPreamble.\n'
    for item in parts:
        out += f"--{boundary}\n{item}"
    return out + (f"--{boundary}--\nEpilogue.\n" if close else "")


def blob(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def to_bytes(text: str, newline: str = "\r\n") -> bytes:
    return text.replace("\n", newline).encode("utf-8", "surrogateescape")


def parse_both(tmp_path: Path, raw: bytes) -> tuple[InboundMessage, InboundMessage]:
    """parse_file (from a file, spooling above THRESHOLD) and parse_message of ``raw``."""
    source = tmp_path / "mail.eml"
    source.write_bytes(raw)
    spooled = parse_file(
        source,
        channel_mailbox="support",
        external_id="1:1",
        spool_dir=tmp_path / "spool",
        threshold=THRESHOLD,
    )
    return spooled, parse_message(raw, channel_mailbox="support", external_id="1:1")


def compare(tmp_path: Path, raw: bytes) -> tuple[InboundMessage, InboundMessage]:
    """parse_file and parse_message of ``raw``: every field but the attachments' storage equal."""
    spooled, whole = parse_both(tmp_path, raw)
    assert spooled.content_hash == whole.content_hash == hashlib.sha256(raw).hexdigest()
    for name in ("subject", "sender", "text", "html", "message_id", "to", "cc", "references"):
        assert getattr(spooled, name) == getattr(whole, name), name
    assert spooled.flags == whole.flags
    assert spooled.headers == whole.headers
    assert spooled.sent_at == whole.sent_at
    assert [described(a) for a in spooled.attachments] == [described(a) for a in whole.attachments]
    return spooled, whole


def described(att: Attachment) -> tuple[object, ...]:
    data = att.path.read_bytes() if att.path is not None else att.content
    assert data is not None
    assert len(data) == att.size
    digest = hashlib.sha256(data).hexdigest()
    return (att.filename, att.content_type, att.size, digest, att.content_id, att.inline)


def spool_files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "spool"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_a_large_attachment_is_spooled_and_parses_as_parse_message(
    tmp_path: Path, newline: str
) -> None:
    data = blob(5 * 1024 * 1024)
    text = HEAD + multipart(
        "mixed",
        "=_b",
        [
            part("text/plain; charset=utf-8", "The logs are attached.", cte="7bit"),
            part(
                'application/zip; name="logs.zip"',
                b64(data),
                extra="Content-Disposition: attachment\n",
            ),
        ],
    )
    spooled, _ = compare(tmp_path, to_bytes(text, newline))
    assert spooled.text == "The logs are attached."
    [att] = spooled.attachments
    assert (att.filename, att.content_type, att.size, att.content) == (
        "logs.zip", "application/zip", len(data), None,
    )  # fmt: skip
    assert att.path is not None
    assert att.path.parent == tmp_path / "spool"
    assert att.path.read_bytes() == data
    assert spool_files(tmp_path) == [att.path]
    assert "x-inbox-daemon-spooled" not in spooled.headers


def test_small_parts_stay_in_the_skeleton(tmp_path: Path) -> None:
    text = HEAD + multipart(
        "mixed", "b", [part('image/png; name="a.png"', b64(blob(THRESHOLD // 2)))]
    )
    spooled, _ = compare(tmp_path, to_bytes(text))
    [att] = spooled.attachments
    assert att.path is None
    assert att.content is not None
    assert spool_files(tmp_path) == []


def test_the_body_text_is_never_spooled_but_a_text_attachment_is(tmp_path: Path) -> None:
    body = ("Line of the message body. " * 3 + "\n") * 5000
    attached = ("a,b,c\n" * 40000).encode()
    text = HEAD + multipart(
        "mixed",
        "b",
        [
            part("text/plain; charset=utf-8", b64(body.encode())),
            part("text/html; charset=utf-8", b64(f"<p>{body}</p>".encode())),
            part(
                "text/plain; charset=utf-8",
                b64(attached),
                extra='Content-Disposition: attachment; filename="data.csv"\n',
            ),
            part('text/plain; name="notes.txt"', b64(attached)),  # may be the body
        ],
    )
    spooled, _ = compare(tmp_path, to_bytes(text))
    assert spooled.text.startswith("Line of the message body.")
    assert [(a.filename, a.path is not None) for a in spooled.attachments] == [
        ("data.csv", True),
        ("notes.txt", False),
    ]
    assert len(spool_files(tmp_path)) == 1


@pytest.mark.parametrize(
    "tail",
    [
        "QUJD",  # clean
        "QUJDRA",  # padding missing
        "QUJDRA=",  # padding short
        "QUJ*D!R\x7fA==",  # junk characters
        "QQ==QUJD",  # data after the final padding is ignored
        "QQ=QUJD",  # a "=" that completes nothing is skipped
        "=QUJDRA==",  # so is a leading one
        "QUJDR",  # one character too many: the email package keeps the text
        "QUJDR!!\n=\n",
    ],
)
def test_a_broken_base64_tail_decodes_as_the_email_package_decodes_it(
    tmp_path: Path, tail: str
) -> None:
    body = b64(blob(200_000, seed=3)) + "\n" + tail
    text = HEAD + multipart("mixed", "b", [part('application/pdf; name="x.pdf"', body)])
    spooled, _ = compare(tmp_path, to_bytes(text))
    assert spooled.attachments[0].path is not None


def test_a_nested_mixed_inside_alternative(tmp_path: Path) -> None:
    inner = multipart(
        "mixed",
        "inner",
        [
            part("text/html; charset=utf-8", "<p>Hello</p>", cte="7bit"),
            part('application/pdf; name="report.pdf"', b64(blob(300_000, 4))),
        ],
    )
    text = HEAD + multipart(
        "alternative",
        "outer",
        [part("text/plain; charset=utf-8", "Hello", cte="7bit"), inner],
    )
    spooled, _ = compare(tmp_path, to_bytes(text))
    assert [a.filename for a in spooled.attachments] == ["report.pdf"]
    assert spooled.attachments[0].path is not None


@pytest.mark.parametrize("where", ["after the part", "inside the part"])
def test_a_multipart_cut_short(tmp_path: Path, where: str) -> None:
    data = b64(blob(400_000, 5))
    if where == "inside the part":
        data = data[: len(data) // 2]
    text = HEAD + multipart(
        "mixed",
        "b",
        [
            part("text/plain", "See attached.", cte="7bit"),
            part('application/octet-stream; name="dump.bin"', data),
        ],
        close=False,
    )
    spooled, _ = compare(tmp_path, to_bytes(text))
    assert spooled.attachments[0].path is not None


def test_an_outer_boundary_ends_an_unclosed_inner_multipart(tmp_path: Path) -> None:
    inner = multipart(
        "mixed",
        "inner",
        [part('application/pdf; name="a.pdf"', b64(blob(200_000, 6)))],
        close=False,
    )
    text = HEAD + multipart(
        "mixed", "outer", [inner, part('image/jpeg; name="b.jpg"', b64(blob(150_000, 7)))]
    )
    spooled, _ = compare(tmp_path, to_bytes(text))
    assert [(a.filename, a.path is not None) for a in spooled.attachments] == [
        ("a.pdf", True),
        ("b.jpg", True),
    ]


def test_a_mail_without_multipart_whose_body_is_a_large_attachment(tmp_path: Path) -> None:
    text = HEAD + part(
        'application/pdf; name="scan.pdf"',
        b64(blob(600_000, 8)),
        extra="Content-Disposition: attachment\nX-Mailer: scanner 2.0\n",
    )
    spooled, _ = compare(tmp_path, to_bytes(text))
    [att] = spooled.attachments
    assert (att.filename, att.path is not None) == ("scan.pdf", True)
    assert spooled.headers["x-mailer"] == ("scanner 2.0",)
    assert "x-inbox-daemon-spooled" not in spooled.headers


def test_inline_images_keep_their_content_id(tmp_path: Path) -> None:
    related = multipart(
        "related",
        "rel",
        [
            part(
                "text/html; charset=utf-8",
                '<img src="cid:logo@x"><img src="cid:photo@x">',
                cte="7bit",
            ),
            part("image/png", b64(blob(100_000, 9)), extra="Content-ID: <logo@x>\n"),
            part(
                'image/jpeg; name="photo.jpg"',
                b64(blob(200_000, 10)),
                extra="Content-ID: <photo@x>\nContent-Disposition: inline\n",
            ),
        ],
    )
    spooled, _ = compare(tmp_path, to_bytes(HEAD + related))
    assert [
        (a.filename, a.content_id, a.inline, a.path is not None) for a in spooled.attachments
    ] == [
        ("attachment-1.png", "logo@x", True, True),
        ("photo.jpg", "photo@x", True, True),
    ]


def eight_bit(size: int, seed: int) -> str:
    """Lines of random bytes (none a line ending), as an 8bit body: surrogate-escaped text."""
    rng = random.Random(seed)
    lines = []
    while size > 0:
        line = bytes(rng.choice(b"abc \t\xe9\xff\x00-=.") for _ in range(rng.randint(0, 120)))
        lines.append(line.decode("ascii", "surrogateescape"))
        size -= len(line) + 1
    return "\n".join(lines)


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
@pytest.mark.parametrize("encoding", ["8bit", "binary", "7bit", "quoted-printable"])
@pytest.mark.parametrize("ending", ["closed", "cut short", "alone"])
def test_a_large_attachment_not_in_base64_is_spooled_as_parse_message_decodes_it(
    tmp_path: Path, newline: str, encoding: str, ending: str
) -> None:
    body = eight_bit(300_000, 12)
    log = part('application/octet-stream; name="app.log"', body, cte=encoding)
    if ending == "alone":  # the whole mail is the attachment: no boundary after it
        text = HEAD + log
    else:
        parts = [part("text/plain", "The log.", cte="7bit"), log]
        text = HEAD + multipart("mixed", "b", parts, close=ending == "closed")
    spooled, _ = compare(tmp_path, to_bytes(text, newline))
    [att] = [a for a in spooled.attachments if a.filename == "app.log"]
    assert att.path is not None
    assert spool_files(tmp_path) == [att.path]


def forwarding(size: int) -> tuple[str, str]:
    """A mail forwarding another as an attachment: (the whole mail, the attached mail)."""
    forwarded = HEAD.replace("spool-1", "inner-1") + multipart(
        "mixed", "fwd", [part('application/pdf; name="inner.pdf"', b64(blob(size, 11)))]
    )
    text = HEAD + multipart(
        "mixed",
        "b",
        [
            part("text/plain", "Forwarded.", cte="7bit"),
            f"Content-Type: message/rfc822\n\n{forwarded}",
        ],
    )
    return text, forwarded


def test_a_small_attached_mail_is_left_alone(tmp_path: Path) -> None:
    text, _ = forwarding(10_000)
    spooled, _ = compare(tmp_path, to_bytes(text))
    assert [a.filename for a in spooled.attachments] == ["The logs you asked for.eml"]
    assert spool_files(tmp_path) == []


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_a_large_attached_mail_goes_to_a_file_as_it_came(tmp_path: Path, newline: str) -> None:
    text, forwarded = forwarding(300_000)
    spooled, whole = parse_both(tmp_path, to_bytes(text, newline))
    for name in ("subject", "sender", "text", "html", "message_id", "references", "flags"):
        assert getattr(spooled, name) == getattr(whole, name), name
    [att], [full] = spooled.attachments, whole.attachments
    described = (att.filename, att.content_type, att.inline)
    assert described == (full.filename, full.content_type, full.inline)
    assert described == ("The logs you asked for.eml", "message/rfc822", False)
    assert att.content is None
    assert att.path is not None
    # The attached mail byte for byte (parse_message re-serialises it); its last line ending
    # belongs to the boundary after it.
    assert att.path.read_bytes() == to_bytes(forwarded, newline).removesuffix(newline.encode())
    assert att.size == att.path.stat().st_size
    assert spool_files(tmp_path) == [att.path]


def test_a_bounce_returning_a_large_original_still_names_it(tmp_path: Path) -> None:
    """The Message-ID of the returned original (what the bounce is matched by) is read from
    the header block the skeleton keeps."""
    _, original = forwarding(300_000)
    text = (
        "From: MAILER-DAEMON@mx.example\nTo: support@example.com\nSubject: Undelivered Mail\n"
        "Message-ID: <bounce-1@mx.example>\nMIME-Version: 1.0\n"
        + multipart(
            "report; report-type=delivery-status",
            "r",
            [
                part("text/plain", "Delivery failed.", cte="7bit"),
                part("message/delivery-status", "Final-Recipient: rfc822; x@y.example\n"
                     "Action: failed\nStatus: 5.1.1\n", cte="7bit"),
                f"Content-Type: message/rfc822\n\n{original}",
            ],
        )
    )  # fmt: skip
    spooled, whole = parse_both(tmp_path, to_bytes(text))
    assert spooled.references == whole.references
    assert len(spool_files(tmp_path)) == 1
    assert "<inner-1@customer.example>" in spooled.references
    assert spooled.flags == whole.flags
    assert spooled.flags.bounce


def test_lone_carriage_returns_end_lines_as_in_the_email_package(tmp_path: Path) -> None:
    text = HEAD + multipart(
        "mixed",
        "b",
        [
            part("text/plain", "Hello", cte="7bit"),
            part('application/pdf; name="a.pdf"', b64(blob(200_000, 12))),
            part('application/pdf; name="b.pdf"', b64(blob(100_000, 13))),
        ],
    )
    spooled, _ = compare(tmp_path, to_bytes(text, "\r"))
    assert [a.filename for a in spooled.attachments] == ["a.pdf", "b.pdf"]


def test_a_boundary_reused_by_a_nested_multipart(tmp_path: Path) -> None:
    """The parts after the nested multipart's closing boundary are recovered by mime.py."""
    text = HEAD + (
        'Content-Type: multipart/mixed; boundary="same"\n\n'
        "--same\n"
        'Content-Type: multipart/alternative; boundary="same"\n\n'
        "--same\n" + part("text/plain", "Hello", cte="7bit") + "--same--\n"
        "--same\n" + part('application/pdf; name="a.pdf"', b64(blob(200_000, 14))) + "--same--\n"
    )
    compare(tmp_path, to_bytes(text))


def test_very_long_lines_come_in_pieces(tmp_path: Path) -> None:
    data = blob(500_000, 15)
    text = HEAD + multipart(
        "mixed", "b", [part('application/pdf; name="a.pdf"', b64(data, width=10**9))]
    )
    spooled, _ = compare(tmp_path, to_bytes(text))
    assert spooled.attachments[0].path is not None


def test_unparseable_files_are_rejected_like_parse_message_rejects_them(tmp_path: Path) -> None:
    for raw in (b"", b"\r\n \r\n", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(THRESHOLD * 2)):
        source = tmp_path / "mail.eml"
        source.write_bytes(raw)
        with pytest.raises(RejectedMessage):
            parse_file(source, channel_mailbox="s", external_id="1", spool_dir=tmp_path / "s")


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        parse_file(tmp_path / "gone", channel_mailbox="s", external_id="1", spool_dir=tmp_path)


def test_should_spool_and_spool_directory() -> None:
    assert not should_spool(SPOOL_MAIL)
    assert should_spool(SPOOL_MAIL + 1)
    with spool_directory() as folder:
        (folder / "x").write_bytes(b"x")
    assert not folder.exists()


def parse_traced(source: Path, spool_dir: Path) -> tuple[InboundMessage, int]:
    """parse_file of ``source`` with the default threshold, and its peak of traced memory."""
    gc.collect()
    tracemalloc.start()
    try:
        message = parse_file(source, channel_mailbox="s", external_id="1", spool_dir=spool_dir)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return message, peak


def test_parse_file_of_a_30_mb_attachment_stays_small(tmp_path: Path) -> None:
    source = tmp_path / "big.eml"
    data_sha = hashlib.sha256()
    rng = random.Random(16)
    with source.open("wb") as out:
        out.write(to_bytes(HEAD + 'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'))
        out.write(to_bytes(part("text/plain", "Big one.", cte="7bit") + "--b\n"))
        out.write(to_bytes('Content-Type: application/zip; name="big.zip"\n'))
        out.write(to_bytes("Content-Transfer-Encoding: base64\n\n"))
        for _ in range(40):  # 40 x 768 KiB: no padding before the end
            chunk = rng.randbytes(768 * 1024)
            data_sha.update(chunk)
            out.write(to_bytes(b64(chunk) + "\n"))
        out.write(b"--b--\r\n")
    message, peak = parse_traced(source, tmp_path / "spool")
    [att] = message.attachments
    assert att.path is not None
    assert att.size == 30 * 1024 * 1024
    assert hashlib.sha256(att.path.read_bytes()).hexdigest() == data_sha.hexdigest()
    assert message.content_hash == hashlib.sha256(source.read_bytes()).hexdigest()
    assert peak < 15 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_parse_file_of_a_forwarded_30_mb_mail_stays_small(tmp_path: Path) -> None:
    source = tmp_path / "big.eml"
    rng = random.Random(17)
    with source.open("wb") as out:
        out.write(to_bytes(HEAD + 'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'))
        out.write(to_bytes(part("text/plain", "See below.", cte="7bit") + "--b\n"))
        out.write(to_bytes("Content-Type: message/rfc822\n\n"))
        start = out.tell()
        out.write(to_bytes(HEAD.replace("spool-1", "inner-30") + "Content-Type: application/zip\n"))
        out.write(to_bytes("Content-Transfer-Encoding: base64\n\n"))
        for _ in range(40):
            out.write(to_bytes(b64(rng.randbytes(768 * 1024)) + "\n"))
        end = out.tell() - 2  # the last CRLF is the boundary's
        out.write(b"--b--\r\n")
    message, peak = parse_traced(source, tmp_path / "spool")
    [att] = message.attachments
    assert att.path is not None
    assert (att.filename, att.content_type) == ("The logs you asked for.eml", "message/rfc822")
    with source.open("rb") as raw:
        raw.seek(start)
        assert (
            hashlib.sha256(att.path.read_bytes()).digest()
            == hashlib.sha256(raw.read(end - start)).digest()
        )
    assert peak < 15 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="ab=3D \t\r\n\xe9", max_size=80),
    cut=st.lists(st.integers(min_value=0, max_value=80), max_size=4),
    in_multipart=st.booleans(),
)
def test_the_chunked_quoted_printable_decoder_matches_the_email_package(
    text: str, cut: list[int], in_multipart: bool
) -> None:
    body = text.encode("latin-1")
    head = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    if in_multipart:
        raw = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n' + head + body
        raw += b"\r\n--b--\r\n"
    else:
        raw = head + body
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    leaf = msg.get_payload(0) if in_multipart else msg
    expected = leaf.get_payload(decode=True)
    # The reader gives the body as lines; the last one ends where the boundary line begins.
    fed = body + b"\r\n" if in_multipart else body
    out = io.BytesIO()
    decoder = _QuotedPrintableFile(out, cut_last_eol=in_multipart)
    bounds = sorted({min(c, len(fed)) for c in cut})
    for start, end in zip([0, *bounds], [*bounds, len(fed)], strict=True):
        decoder.feed(fed[start:end])
    decoder.feed(b"", final=True)
    assert out.getvalue() == expected
    assert decoder.size == len(expected)


def email_package_decoding(encoded: bytes) -> bytes:
    msg = email.message_from_bytes(
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + encoded,
        policy=email.policy.compat32,
    )
    data = msg.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="ABCDab01+/=\n!* ", max_size=60),
    cut=st.lists(st.integers(min_value=0, max_value=60), max_size=4),
)
def test_the_chunked_decoder_matches_the_email_package(text: str, cut: list[int]) -> None:
    encoded = text.encode("ascii")
    out = io.BytesIO()
    decoder = _Base64File(out)
    start = 0
    for at in sorted(cut):
        decoder.feed(encoded[start:at])
        start = max(start, at)
    decoder.feed(encoded[start:], final=True)
    expected = email_package_decoding(encoded)
    if decoder.undecodable:
        assert expected == encoded.replace(b"\n", b"").replace(b"\r", b"")
        with pytest.raises(binascii.Error):
            base64.b64decode(encoded.translate(None, b"\n") + b"==")
    else:
        assert out.getvalue() == expected
        assert decoder.size == len(expected)
