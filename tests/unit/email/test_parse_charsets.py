"""Charsets as real mail uses them: declared elsewhere in the mail, mislabelled, extended.

Each mail is built here byte by byte, the way the mailer that writes it does.
"""

from __future__ import annotations

import base64

import pytest
from email_helpers import parse

from inbox_daemon.channels.email.decode import decode_bytes, decode_header_value, detect

ZH = "您好，我们的打印机昨天坏了，无法打印任何文件。请尽快派人来修理。谢谢！"
RU = "Здравствуйте, наш принтер со вчерашнего дня не печатает. Пожалуйста, помогите."
FR = "Bonjour, notre imprimante ne fonctionne plus depuis hier. Pouvez-vous envoyer quelqu'un ?"


def raw_mail(headers: bytes, body: bytes) -> bytes:
    return (
        b"From: Jane <jane@example.com>\r\nTo: support@shop.example\r\n"
        b"Message-ID: <c@example.com>\r\nDate: Tue, 24 May 2016 13:09:41 +0100\r\n"
        + headers
        + b"\r\n"
        + body
    )


def test_a_raw_8bit_subject_is_read_with_a_charset_declared_by_a_later_part() -> None:
    # The first part says utf-8 (and is ASCII); the HTML part says gb2312; the subject was
    # written raw in gb2312. Only the first declared charset was tried: cp1252 garbage.
    subject = "打印机坏了，请帮忙".encode("gb2312")
    raw = raw_mail(
        b"Subject: " + subject + b"\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="b"\r\n',
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee the HTML\r\n"
        b"--b\r\nContent-Type: text/html; charset=gb2312\r\nContent-Transfer-Encoding: 8bit\r\n"
        b"\r\n<p>" + ZH.encode("gb2312") + b"</p>\r\n--b--\r\n",
    )
    msg = parse(raw)
    assert msg.subject == "打印机坏了，请帮忙"
    assert ZH in (msg.html or "")


def test_iso_2022_jp_with_nec_extensions_is_decoded_not_kept_as_escapes() -> None:
    # ① ② (NEC row 13) and ㈱ are what Outlook and Becky! write in "ISO-2022-JP": Python's
    # iso2022_jp codecs refuse them, and the 7-bit bytes used to be kept as UTF-8 text.
    text = "①②の件、㈱サンプルです。"
    jis = _cp50220(text)
    word = b"=?ISO-2022-JP?B?" + base64.b64encode(jis) + b"?="
    raw = raw_mail(
        b"Subject: " + word + b"\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n",
        jis + b"\r\n",
    )
    msg = parse(raw)
    assert msg.subject == text
    assert msg.text.strip() == text
    assert "\x1b" not in msg.text
    assert "$B" not in msg.text


def test_an_undeclared_raw_iso_2022_jp_header_is_decoded() -> None:
    jis = "山田 太郎".encode("iso2022_jp")
    assert decode_header_value(jis.decode("ascii")) == "山田 太郎"
    assert decode_bytes(b"plain ascii", None) == "plain ascii"


@pytest.mark.parametrize(
    ("label", "codec", "text"),
    [
        ("gb2312", "gb18030", "打印机坏了"),
        ("ks_c_5601-1987", "cp949", "프린터가 고장났어요"),
        ("shift_jis", "cp932", "プリンター①が動きません"),
        ("iso-2022-jp", "iso2022_jp", "プリンターが動きません"),
        ("big5", "big5hkscs", "印表機壞了"),
    ],
)
def test_common_labels_map_to_the_codec_that_reads_what_mailers_write(
    label: str, codec: str, text: str
) -> None:
    word = "=?" + label + "?B?" + base64.b64encode(text.encode(codec)).decode() + "?="
    assert decode_header_value(word) == text


def test_a_body_mislabelled_utf8_is_read_by_the_detector() -> None:
    assert decode_bytes(ZH.encode("gb2312"), "utf-8") == ZH
    assert decode_bytes(RU.encode("cp1251"), "utf-8") == RU


def test_a_few_broken_bytes_do_not_send_utf8_text_to_the_detector() -> None:
    # Mostly valid UTF-8 Cyrillic with one bad byte: the detector would call it GB18030.
    data = RU.encode() + b"\xff" + RU.encode()
    assert decode_bytes(data, "utf-8") == f"{RU}\ufffd{RU}"
    assert decode_bytes(data, None) == f"{RU}\ufffd{RU}"


def test_a_western_text_stays_windows_1252_and_a_weak_label_is_never_second_guessed() -> None:
    # charset-normalizer calls short Western text cp1250 ("crčme") as often as not.
    assert decode_bytes(FR.encode("cp1252"), None) == FR
    assert decode_bytes("Café crème für Müller".encode("cp1252"), "iso-8859-1") == (
        "Café crème für Müller"
    )


def test_the_detector_answers_only_above_its_floor() -> None:
    assert detect(ZH.encode("gb2312")) == ZH
    assert detect("短い".encode("cp932")) is None  # too few bytes to tell
    assert detect(FR.encode("cp1252")) is None  # Latin script: left to Windows-1252
    # KOI8-R looks like half-width katakana in Shift_JIS to it: not CJK text, refused.
    assert detect(RU.encode("koi8-r")) is None


def test_a_nameless_part_is_named_from_its_description_else_numbered() -> None:
    raw = raw_mail(
        b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="r"\r\n',
        b"--r\r\nContent-Type: text/plain\r\n\r\nThis is the mail system.\r\n"
        b"--r\r\nContent-Description: Delivery report\r\nContent-Type: text/plain\r\n"
        b"Content-Disposition: attachment\r\n\r\nStatus: 5.1.1\r\n"
        b"--r\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"JVBERi0xLjQK\r\n"
        b"--r\r\nContent-Type: image/png\r\nContent-Description: screen.png\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
        b"--r\r\nContent-Type: image/png\r\nContent-Description: "
        + b"a very long sentence " * 5
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r--\r\n",
    )
    names = [a.filename for a in parse(raw).attachments]
    assert names == ["Delivery report.txt", "attachment-2.pdf", "screen.png", "attachment-4.png"]


def _cp50220(text: str) -> bytes:
    """``text`` as Windows writes ISO-2022-JP: Shift_JIS pairs mapped back to JIS X 0208."""
    out = bytearray()
    jis = False
    for ch in text:
        sjis = ch.encode("cp932")
        if len(sjis) == 1:
            if jis:
                out += b"\x1b(B"
                jis = False
            out += sjis
            continue
        if not jis:
            out += b"\x1b$B"
            jis = True
        s1, s2 = sjis
        s1 -= 0xB0 if s1 >= 0xE0 else 0x70
        j1 = s1 * 2 - (1 if s2 < 0x9F else 0)
        j2 = s2 - (0x1F if s2 < 0x7F else 0x20) if s2 < 0x9F else s2 - 0x7E
        out += bytes((j1, j2))
    if jis:
        out += b"\x1b(B"
    return bytes(out)
