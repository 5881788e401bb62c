"""Text decoding for incoming mail: charsets, RFC 2047 encoded words and raw 8-bit headers.

This module owns the rule that decoding never fails. Every function here takes bytes or a raw
header string as the email package keeps it (ASCII with undecodable bytes smuggled in as
surrogates) and returns clean text. When the declared charset fails (or none is declared), the
order is: its relatives (ISO-2022-JP with the NEC and IBM extensions Microsoft mailers write, as
Windows reads them), UTF-8, every other charset the mail declares anywhere, a detector
(charset-normalizer) whose answer is taken only above a confidence floor, then Windows-1252 /
Latin-1 or replacement characters. NUL characters (which PostgreSQL cannot store) and lone
surrogates never come out.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re
import unicodedata
from collections.abc import Sequence

__all__ = [
    "Fallback",
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

#: ISO-2022-JP read as Windows reads it (CP50220): JIS X 0208 with the NEC row 13 and the
#: NEC-selected IBM extensions, which Python's iso2022_jp codecs refuse (see :func:`_jis_ms`).
_JIS_MS = "iso2022_jp_ms"

#: Extra codecs to try, in order, when the declared one fails on the bytes.
_FAMILY = {
    "iso2022_jp": (
        "iso2022_jp_2",
        "iso2022_jp_ext",
        "iso2022_jp_2004",
        _JIS_MS,
        "utf-8",
        "euc_jp",
        "cp932",
    ),
    "iso2022_jp_2": ("iso2022_jp_ext", "iso2022_jp_2004", _JIS_MS, "utf-8", "euc_jp", "cp932"),
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


#: Other charsets of the same mail: one label, or every label declared in it, in order.
Fallback = str | Sequence[str] | None

#: An ISO-2022 designation: 7-bit bytes that are not ASCII text.
_ISO2022_ESCAPE = re.compile(rb"\x1b(?:\$[@B]|\$\([DQO]|\([BJI])")


def _try(data: bytes, codec: str) -> str | None:
    if codec == _JIS_MS:
        return _jis_ms(data)
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError, ValueError, TypeError):
        return None


def _fallbacks(fallback: Fallback) -> list[str]:
    labels = [fallback] if isinstance(fallback, str) else list(fallback or ())
    found: list[str] = []
    for label in labels:
        codec = codec_for(label)
        if codec is not None and codec not in _WEAK and codec not in found:
            found.append(codec)
    return found


def decode_bytes(data: bytes, charset: str | None = None, *, fallback: Fallback = None) -> str:
    """Decode ``data`` declared as ``charset``; never raises.

    ``fallback``: the other charsets the mail declares (for instance its parts' charsets when a
    header has raw 8-bit bytes). The order is: the declared codec (for the weak labels
    us-ascii/latin-1/cp1252 UTF-8 goes first), its relatives, UTF-8, the fallbacks, the
    detector above its floor (when the declared codec failed, or none was declared), and
    finally Windows-1252/Latin-1 or the declared codec with replacement characters. 7-bit
    bytes with ISO-2022 escapes are never kept as ASCII.
    """
    codec = codec_for(charset)
    if data.isascii():
        escaped = _ISO2022_ESCAPE.search(data) is not None
        if escaped and (codec is None or codec in _WEAK):
            codec = "iso2022_jp"  # undeclared (an old Japanese mailer's raw header)
        elif not escaped and (codec is None or not codec.startswith(_NOT_ASCII_COMPATIBLE)):
            return scrub(data.decode("ascii"))
        if escaped:  # ASCII-compatible codecs would keep the escapes as text
            declared = codec or "iso2022_jp"
            for candidate in (declared, *_FAMILY.get(declared, ()), *_fallbacks(fallback)):
                if candidate.startswith("iso2022") or candidate == _JIS_MS:
                    text = _try(data, candidate)
                    if text is not None:
                        return scrub(text)
            return scrub(_jis_ms(data, errors="replace") or data.decode("ascii"))
    weak = codec is None or codec in _WEAK
    candidates: list[str] = []
    if weak:
        candidates.append("utf-8")
    else:
        candidates.append(codec or "utf-8")
        candidates.extend(_FAMILY.get(codec or "", ("utf-8",)))
    candidates.extend(c for c in _fallbacks(fallback) if c not in candidates)
    for candidate in candidates:
        text = _try(data, candidate)
        if text is not None:
            return scrub(text)
    # A few broken bytes in text that is otherwise what it says (or UTF-8, undeclared) are
    # replaced; the detector is asked only when the text is not that at all.
    if codec is not None and codec not in _WEAK:
        nearly = _nearly(data, codec)
    else:
        nearly = None if _mostly_not_utf8(data) else _nearly(data, "utf-8")
    if nearly is not None:
        return scrub(nearly)
    # A weak label (latin-1, cp1252) did not fail: Windows-1252 reads what UTF-8 did not.
    detected = detect(data) if codec is None or codec not in _WEAK else None
    if detected is not None:
        return scrub(detected)
    if codec is None or codec in _WEAK:
        text = _try(data, "cp1252")
        return scrub(text if text is not None else data.decode("latin-1"))
    if codec == "utf-8" and _mostly_not_utf8(data):
        return scrub(data.decode("cp1252", "replace"))
    try:
        return scrub(data.decode(codec, "replace"))
    except (UnicodeError, LookupError, ValueError, TypeError):
        return scrub(data.decode("utf-8", "replace"))


#: Replacement characters allowed per byte for a text to count as "nearly" its charset.
_NEARLY = 1 / 100


def _nearly(data: bytes, codec: str) -> str | None:
    """``data`` decoded with replacement characters, if only a few bytes needed one."""
    try:
        text = data.decode(codec, "replace")
    except (LookupError, ValueError, TypeError):
        return None
    bad = text.count("\ufffd")
    return text if 0 < bad <= max(1, len(data) * _NEARLY) else None


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


def decode_header_value(raw: str, *, fallback: Fallback = None) -> str:
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


def _decode_words(data: bytes, fallback: Fallback) -> str:
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


# --- ISO-2022-JP as Windows reads it ------------------------------------------------------

_JIS_SEGMENT = re.compile(rb"\x1b(\$[@B]|\([BJI])")


def _jis_ms(data: bytes, errors: str = "strict") -> str | None:
    """ISO-2022-JP decoded through Shift_JIS (cp932), as Windows' CP50220 does: the JIS X 0208
    pairs are mapped arithmetically to Shift_JIS, which carries the NEC row 13 (circled
    numbers, units) and the IBM extensions. None when the bytes are not such text."""
    out = bytearray()
    mode = b"(B"
    pos = 0
    for match in [*_JIS_SEGMENT.finditer(data), None]:
        end = match.start() if match is not None else len(data)
        chunk = data[pos:end]
        if mode in (b"$@", b"$B"):
            chunk = chunk.replace(b"\r", b"").replace(b"\n", b"")
            if len(chunk) % 2:
                if errors == "strict":
                    return None
                chunk = chunk[:-1]
            for i in range(0, len(chunk), 2):
                out += _jis_to_sjis(chunk[i], chunk[i + 1])
        elif mode == b"(I":
            out += bytes(b | 0x80 for b in chunk)
        else:
            out += chunk
        if match is not None:
            mode = match.group(1)
            pos = match.end()
    try:
        return bytes(out).decode("cp932", errors)
    except UnicodeDecodeError:
        return None


def _jis_to_sjis(j1: int, j2: int) -> bytes:
    if not (0x21 <= j1 <= 0x7E and 0x21 <= j2 <= 0x7E):
        return b"\xff\xff"  # not JIS: undecodable in cp932, so strict decoding refuses it
    s1 = (j1 + 1) // 2 + (0x70 if j1 <= 0x5E else 0xB0)
    s2 = j2 + (0x1F if j1 % 2 else 0x7E)
    if j1 % 2 and s2 >= 0x7F:
        s2 += 1
    return bytes((s1, s2))


# --- the detector -----------------------------------------------------------------------

#: Below this the detector is not asked: a few bytes fit too many charsets.
DETECT_MIN_BYTES = 32
#: The detector's answer is taken only with at most this much "chaos" (garbled-looking text)…
DETECT_MAX_CHAOS = 0.1
#: … and either this much coherence with a language it knows (alphabetic scripts) …
DETECT_MIN_COHERENCE = 0.2
#: … or, for a multi-byte charset, this share of its non-ASCII characters in CJK scripts.
DETECT_MIN_CJK = 0.6


def detect(data: bytes) -> str | None:
    """The text ``data`` holds by charset-normalizer's best guess, if it is confident enough."""
    if len(data) < DETECT_MIN_BYTES:
        return None
    from charset_normalizer import from_bytes  # loaded on the rare path that needs it

    best = from_bytes(data).best()
    if best is None or best.chaos > DETECT_MAX_CHAOS:
        return None
    if best.encoding not in _DETECTABLE:
        return None  # a Latin-script guess: Windows-1252, the likelier one, reads it as well
    text = str(best)
    wide = [ch for ch in text if ord(ch) > 0x7F]
    if not wide or "\ufffd" in text:
        return None
    if best.coherence >= DETECT_MIN_COHERENCE:
        return text
    cjk = sum(1 for ch in wide if _cjk(ch))
    return text if cjk / len(wide) >= DETECT_MIN_CJK else None


#: What the detector may name: the charsets of non-Latin scripts. A Latin-script guess
#: (cp1250, iso8859_2 …) for Western text is as often wrong as right, and Windows-1252 reads
#: such text at least as well.
_DETECTABLE = frozenset({
    "cp1251", "koi8_r", "koi8_u", "iso8859_5", "mac_cyrillic", "cp866", "cp855",
    "cp1253", "iso8859_7", "cp1255", "iso8859_8", "cp1256", "iso8859_6", "cp874", "tis_620",
    "gb18030", "gb2312", "gbk", "hz", "big5", "big5hkscs", "cp950",
    "cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004",
    "euc_jisx0213", "iso2022_jp", "cp949", "euc_kr", "johab", "iso2022_kr",
})  # fmt: skip


def _cjk(ch: str) -> bool:
    """Ideographs, kana (full width) and Hangul: what a CJK text is mostly made of."""
    name = unicodedata.name(ch, "")
    if name.startswith("HALFWIDTH"):
        return False
    return name.startswith(("CJK ", "HIRAGANA", "KATAKANA", "HANGUL", "IDEOGRAPHIC")) or (
        "FULLWIDTH" in name
    )
