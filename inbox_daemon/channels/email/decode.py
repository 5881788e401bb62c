"""Text decoding for incoming mail: charsets, RFC 2047 encoded words and raw 8-bit headers.

This module owns the rule that decoding never fails. Every function here takes bytes or a raw
header string as the email package keeps it (ASCII with undecodable bytes smuggled in as
surrogates) and returns clean text: mislabelled and unknown charsets fall back to UTF-8 and
then Windows-1252/Latin-1, undecodable bytes become U+FFFD, and NUL characters (which
PostgreSQL cannot store) and lone surrogates never come out.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re

__all__ = [
    "codec_for",
    "decode_bytes",
    "decode_header_value",
    "header_bytes",
    "scrub",
]

#: Charset labels that say nothing useful: guess instead.
_NO_CHARSET = frozenset(
    {
        "unknown-8bit",
        "unknown",
        "x-unknown",
        "x-user-defined",
        "default",
        "none",
        "charset",
        "8bit",
        "7bit",
        "binary",
        "text",
        "us",
    }
)

#: Labels Python does not know (or knows only as a narrower charset) -> the codec to use.
_ALIASES = {
    "uft-8": "utf-8",
    "utf8mb4": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "x-unicode20utf8": "utf-8",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601-1989": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "ksc_5601": "cp949",
    "euc-kr": "cp949",
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "cn-gb": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "chinese": "gb18030",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "windows-874": "cp874",
    "x-mac-roman": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-mac-greek": "mac-greek",
    "x-mac-turkish": "mac-turkish",
    "x-mac-ce": "mac-latin2",
    "cp-850": "cp850",
    "tis-620": "cp874",
}

#: Codecs that real mail uses as a label for "some western 8-bit text": try UTF-8 first.
_WEAK = frozenset({"ascii", "iso8859-1", "cp1252", "iso8859-15"})

#: Extra codecs to try, in order, when the declared one fails on the bytes.
_FAMILY = {
    "iso2022_jp": ("iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_2004", "utf-8", "euc_jp", "cp932"),
    "iso2022_jp_2": ("iso2022_jp_ext", "iso2022_jp_2004", "utf-8", "euc_jp", "cp932"),
    "euc_jp": ("euc_jis_2004", "utf-8", "cp932"),
    "cp932": ("shift_jis_2004", "utf-8"),
    "gb18030": ("utf-8",),
    "big5hkscs": ("cp950", "utf-8"),
    "cp949": ("utf-8",),
}

#: Codecs for which ASCII bytes do not mean ASCII text.
_NOT_ASCII_COMPATIBLE = (
    "utf-7",
    "iso2022",
    "hz",
    "utf-16",
    "utf-32",
    "punycode",
    "idna",
    "raw-unicode",
    "unicode-escape",
)

_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LABEL = re.compile(r"[A-Za-z0-9._:+()-]+")


@functools.lru_cache(maxsize=512)
def codec_for(charset: str | None) -> str | None:
    """The Python codec name for a MIME charset label, or None when it is unknown or empty."""
    if not charset:
        return None
    match = _LABEL.search(charset)
    if match is None:
        return None
    label = match.group(0).lower().strip("._:-")
    if not label or label in _NO_CHARSET:
        return None
    label = _ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True):
        # base64, hex, rot13, zlib ...: not a way to turn bytes into text.
        return None
    name = info.name
    return _ALIASES.get(name, name)


def scrub(text: str) -> str:
    """Remove what cannot be stored or shown: lone surrogates and NUL characters."""
    if _SURROGATES.search(text) is not None:
        text = _SURROGATES.sub("\ufffd", text)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError, ValueError, TypeError):
        return None


def decode_bytes(data: bytes, charset: str | None = None, *, fallback: str | None = None) -> str:
    """Decode ``data`` declared as ``charset``; never raises.

    ``fallback`` is a second guess (for instance the body charset when a header has raw 8-bit
    bytes). The order is: the declared codec (for the weak labels us-ascii/latin-1/cp1252 UTF-8
    goes first), its relatives, UTF-8, the fallback, Windows-1252 and finally Latin-1 or the
    declared codec with replacement characters.
    """
    codec = codec_for(charset)
    is_ascii = data.isascii()
    if is_ascii and (codec is None or not codec.startswith(_NOT_ASCII_COMPATIBLE)):
        return scrub(data.decode("ascii"))
    candidates: list[str] = []
    if codec is None or codec in _WEAK:
        candidates.append("utf-8")
        extra = codec_for(fallback)
        if extra is not None and extra not in _WEAK:
            candidates.append(extra)
        candidates.append("cp1252")
    else:
        candidates.append(codec)
        candidates.extend(_FAMILY.get(codec, ("utf-8",)))
    for candidate in candidates:
        text = _try(data, candidate)
        if text is not None:
            return scrub(text)
    if codec is None or codec in _WEAK:
        return scrub(data.decode("latin-1"))
    if codec == "utf-8" and _mostly_not_utf8(data):
        return scrub(data.decode("cp1252", "replace"))
    try:
        return scrub(data.decode(codec, "replace"))
    except (UnicodeError, LookupError, ValueError, TypeError):
        return scrub(data.decode("utf-8", "replace"))


def _mostly_not_utf8(data: bytes) -> bool:
    """True when invalid sequences outnumber valid multi-byte characters (text is 8-bit)."""
    text = data.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ord(ch) > 0x7F) - bad
    return bad > good


def header_bytes(raw: str) -> bytes:
    """The bytes of a raw header value as the email package stored it, unfolded."""
    data = raw.encode("utf-8", "surrogateescape")
    if b"\n" in data or b"\r" in data:
        data = data.replace(b"\r\n", b"").replace(b"\n", b"").replace(b"\r", b"")
    return data


# An RFC 2047 encoded word, leniently: RFC 2231 language suffix, spaces inside, any position.
_ENCODED_WORD = re.compile(
    rb"=\?([^?\s*]{1,64})(?:\*[^?]{0,32})?\?([bBqQ])\?([^?]*?)\?=",
)
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_WSP_ONLY = re.compile(rb"[ \t]*")


def _decode_q(payload: bytes) -> bytes:
    payload = payload.replace(b"_", b" ")
    return _QP_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), payload)


def _decode_b(payload: bytes) -> bytes | None:
    payload = re.sub(rb"[^A-Za-z0-9+/]", b"", payload)
    payload += b"=" * (-len(payload) % 4)
    try:
        return binascii.a2b_base64(payload)
    except (binascii.Error, ValueError):
        return None


def decode_header_value(raw: str, *, fallback: str | None = None) -> str:
    """Decode one raw header value: unfold, decode encoded words and raw 8-bit bytes.

    Encoded words next to each other (only whitespace between) are joined, and their bytes are
    concatenated before decoding when they share a charset, so a multi-byte character split
    across two words survives. Control characters other than tab become spaces.
    """
    data = header_bytes(raw)
    if b"=?" not in data:
        text = decode_bytes(data, None, fallback=fallback)
    else:
        text = _decode_words(data, fallback)
    if _CONTROLS.search(text) is not None:
        text = _CONTROLS.sub(" ", text)
    return text.strip()


def _decode_words(data: bytes, fallback: str | None) -> str:
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset: str | None = None
    pos = 0

    def flush() -> None:
        nonlocal pending_charset
        if pending:
            out.append(decode_bytes(b"".join(pending), pending_charset or "utf-8"))
            pending.clear()
        pending_charset = None

    for match in _ENCODED_WORD.finditer(data):
        between = data[pos : match.start()]
        adjacent = bool(pending) and _WSP_ONLY.fullmatch(between) is not None
        if not adjacent:
            flush()
            if between:
                out.append(decode_bytes(between, None, fallback=fallback))
        charset = match.group(1).decode("ascii", "replace")
        if match.group(2) in (b"B", b"b"):
            decoded = _decode_b(match.group(3))
        else:
            decoded = _decode_q(match.group(3))
        pos = match.end()
        if decoded is None:
            flush()
            out.append(match.group(0).decode("ascii", "replace"))
            continue
        if pending and codec_for(charset) != codec_for(pending_charset):
            flush()
        pending_charset = charset
        pending.append(decoded)
    flush()
    if pos < len(data):
        out.append(decode_bytes(data[pos:], None, fallback=fallback))
    return "".join(out)
