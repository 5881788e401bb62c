"""Large mail from a file → :class:`InboundMessage`, without holding the mail in memory.

This module owns :func:`parse_file` and the size rule the channels go by
(:data:`SPOOL_THRESHOLD`, :func:`should_spool`). The file is read once, line by line: its
SHA-256 (the message's ``content_hash``) is computed on the way, and its MIME structure is
followed the way the email package's feed parser follows it (the same boundary lines, a part
ending at any enclosing boundary, no closing boundary needed, ``message/*`` parts left whole).
Every base64 leaf part whose encoded body exceeds the threshold, and that
:func:`.mime.may_spool` allows (attachments only, never body text), is decoded in chunks into a
file in ``spool_dir``, as leniently as the email package decodes (junk skipped, padding fixed,
text after the final padding ignored); its body is cut out of a *skeleton* of the mail and its
header block gains a :data:`.mime.SPOOL_HEADER`. The skeleton (everything else, byte for byte)
goes to :func:`.parse.parse_message`, and each cut-out part comes back as an attachment with a
``path`` and the name, type, Content-ID and inline flag :mod:`.mime` gives the real part.

Spool files: :func:`parse_file` writes them under ``spool_dir`` and never deletes them; the
caller owns that directory and removes it once the message is stored (after the sink
returned). :func:`spool_directory` is the usual way: a fresh directory, removed when the
``with`` block is left. Lines that end in a lone CR are split like the email package splits
them; a line longer than 64 KiB is read in pieces. An attached mail (``message/rfc822``)
larger than the threshold is copied into a spool file as it is, and only its header block
stays in the skeleton (for its subject, the attachment's name, and its Message-ID, which a
bounce returns). An attachment in an identity transfer encoding (7bit, 8bit, binary) is
copied as it is too, and one in quoted-printable decoded a line at a time, both without the
line ending that belongs to the boundary after it. Not spooled, so held in memory as before:
the parts of reports, and the parts of a multipart whose boundary never appears
(:mod:`.mime` re-splits those).
"""

from __future__ import annotations

import binascii
import contextlib
import email.parser
import email.policy
import hashlib
import io
import logging
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from email.message import Message
from pathlib import Path
from typing import BinaryIO

from inbox_daemon.channels.email.mime import (
    SpooledBody,
    may_spool,
    may_spool_message,
    transfer_encoding,
)
from inbox_daemon.messages import InboundMessage

__all__ = ["SPOOL_MAIL", "SPOOL_THRESHOLD", "parse_file", "should_spool", "spool_directory"]

log = logging.getLogger(__name__)

#: A base64 part whose encoded body is larger than this is decoded to a file.
SPOOL_THRESHOLD = 1024 * 1024
#: A mail larger than this is read from a file (:func:`should_spool`). Below it, spooling
#: costs more than it saves: a mail of a few MB parsed in memory peaks at a few tens of MB
#: (the email package holds about eight times the mail), and a spooled one is fetched on its
#: own, outside the batch its neighbours share.
SPOOL_MAIL = 4 * 1024 * 1024

#: The longest piece of a line read at once (a longer line comes in pieces).
_PIECE = 64 * 1024
#: Encoded bytes handed to the decoder at once.
_BATCH = 1024 * 1024
#: Deeper multiparts are copied into the skeleton whole (the email package gives up earlier).
_MAX_NESTING = 100
#: The feed parser's header line (``email.feedparser.headerRE``), on bytes.
_HEADER_LINE = re.compile(rb"^(From |[\041-\071\073-\176]*:|[\t ])")
_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")
_LINE_END = re.compile(rb"(?:\r\n|\n|\r)\Z")
_PAD_RUN = re.compile(rb"(=+)")
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_JUNK = bytes(c for c in range(256) if c not in _B64_ALPHABET + b"=")
_MARKER_NAME = b"X-Inbox-Daemon-Spooled: "

Matcher = Callable[[bytes], re.Match[bytes] | None]


def should_spool(size: int, threshold: int = SPOOL_MAIL) -> bool:
    """Whether a mail of ``size`` bytes should be read from a file with :func:`parse_file`."""
    return size > threshold


@contextlib.contextmanager
def spool_directory(parent: Path | None = None) -> Iterator[Path]:
    """A fresh directory for spool files (in the system's temp dir by default), removed after."""
    path = Path(tempfile.mkdtemp(prefix="inbox-daemon-spool-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def parse_file(
    path: Path,
    *,
    channel_mailbox: str,
    external_id: str,
    our_addresses: Collection[str] = (),
    received_at: datetime | None = None,
    spool_dir: Path,
    threshold: int = SPOOL_THRESHOLD,
) -> InboundMessage:
    """Parse the mail in ``path`` like :func:`.parse.parse_message` would parse its bytes.

    Large base64 attachments are decoded into files under ``spool_dir`` (created if missing;
    the caller removes it) and come back as attachments with a ``path``. Raises
    :class:`RejectedMessage` for a mail that cannot be taken in and :class:`OSError` when
    ``path`` cannot be read or ``spool_dir`` written.
    """
    from inbox_daemon.channels.email.parse import parse_message

    spool_dir.mkdir(parents=True, exist_ok=True)
    with open(path, "rb") as file:
        splitter = _Splitter(_Reader(file), path, spool_dir, threshold)
        try:
            splitter.run()
        except OSError:
            raise
        except Exception as exc:  # a bug here must not lose the mail: parse it whole
            log.warning("splitting %s failed (%r), parsing it whole", path, exc)
            return parse_message(
                path.read_bytes(),
                channel_mailbox=channel_mailbox,
                external_id=external_id,
                our_addresses=our_addresses,
                received_at=received_at,
            )
    skeleton = b"".join(splitter.out)
    splitter.out.clear()
    return parse_message(
        skeleton,
        channel_mailbox=channel_mailbox,
        external_id=external_id,
        our_addresses=our_addresses,
        received_at=received_at,
        content_hash=splitter.reader.sha256.hexdigest(),
        spooled=splitter.spooled,
    )


def _complete(piece: bytes) -> bool:
    return piece[-1:] in (b"\n", b"\r")


class _Reader:
    """The file's lines, hashed as read, with push-back and the feed parser's end of a part.

    A line longer than :data:`_PIECE` comes in pieces; ``starts_line`` tells whether the piece
    just returned starts a line. :meth:`readline` returns ``b""`` at the end of the file and
    at a line that is a boundary of an enclosing multipart (left to be read again), like
    ``email.feedparser.BufferedSubFile``.
    """

    def __init__(self, file: io.BufferedReader) -> None:
        self._file = file
        self.sha256 = hashlib.sha256()
        #: Pieces to return before reading on, last first: (piece, offset, starts_line).
        self._queue: list[tuple[bytes, int, bool]] = []
        self._read_to = 0
        self._at_line_start = True
        #: The file offset of the piece just returned, and whether it starts a line.
        self.offset = 0
        self.starts_line = True
        #: Boundary matchers of the enclosing multiparts, outermost first.
        self.boundaries: list[Matcher] = []

    def readline(self) -> bytes:
        piece = self._next()
        if piece and self.starts_line and piece[:2] == b"--":
            for matches in reversed(self.boundaries):
                if matches(piece):
                    self.unread(piece, self.offset, starts_line=True)
                    return b""
        return piece

    def unread(self, piece: bytes, offset: int, *, starts_line: bool) -> None:
        self._queue.append((piece, offset, starts_line))

    def _next(self) -> bytes:
        if self._queue:
            piece, self.offset, self.starts_line = self._queue.pop()
            return piece
        piece = self._file.readline(_PIECE)
        if not piece:
            self.offset, self.starts_line = self._read_to, True
            return b""
        if piece[-1:] == b"\r" and self._file.peek(1)[:1] == b"\n":
            piece += self._file.read(1)  # a CRLF cut in two by the piece limit
        self.sha256.update(piece)
        offset, starts = self._read_to, self._at_line_start
        self._read_to += len(piece)
        self._at_line_start = _complete(piece)
        carriage_returns = piece.count(b"\r")
        if carriage_returns and carriage_returns != piece.count(b"\r\n"):
            # A lone CR ends a line for the email package too.
            lines = [line for line in _LONE_CR.split(piece) if line]
            at = offset + len(piece)
            for line in reversed(lines[1:]):
                at -= len(line)
                self._queue.append((line, at, True))
            piece = lines[0]
        self.offset, self.starts_line = offset, starts
        return piece

    def full_line(self) -> tuple[bytes, int]:
        """A whole line (pieces joined) and its offset; ``b""`` as for :meth:`readline`."""
        piece = self.readline()
        offset = self.offset
        if not piece or _complete(piece):
            return piece, offset
        pieces = [piece]
        while not _complete(piece):
            piece = self._next()
            if not piece:
                break
            pieces.append(piece)
        return b"".join(pieces), offset


class _IdentityFile:
    """Body bytes in, the same bytes out to a file, the final line ending left out if asked."""

    undecodable = False

    def __init__(self, out: BinaryIO, cut_last_eol: bool) -> None:
        self._out = out
        self._cut = cut_last_eol
        self._held = b""  # a line ending at the end of what was fed, not yet judged
        self.size = 0

    def feed(self, data: bytes, *, final: bool = False) -> None:
        data = self._held + data
        self._held = b""
        if self._cut:
            ending = _LINE_END.search(data)
            if ending is not None:
                data, self._held = data[: ending.start()], data[ending.start() :]
        if final and not self._cut:
            data += self._held
        if data:
            self._out.write(data)
            self.size += len(data)


class _QuotedPrintableFile:
    """Quoted-printable text in, decoded bytes out to a file, as the email package decodes it
    (``binascii.a2b_qp`` of the whole body), in pieces that end after a LF: nothing a2b_qp
    reads as one (an escape, a soft line break) spans one, so the pieces decode alike."""

    undecodable = False

    def __init__(self, out: BinaryIO, cut_last_eol: bool) -> None:
        self._out = out
        self._cut = cut_last_eol
        #: From the start of the last line that ends in LF: its line ending may be the boundary's.
        self._held = b""
        self.size = 0

    def feed(self, text: bytes, *, final: bool = False) -> None:
        data = self._held + text
        if final:
            ending = _LINE_END.search(data) if self._cut else None
            ready, self._held = data[: ending.start()] if ending else data, b""
        else:
            last = data.rfind(b"\n")
            start = data.rfind(b"\n", 0, last) + 1 if last >= 0 else 0
            ready, self._held = data[:start], data[start:]
        decoded = binascii.a2b_qp(ready)
        if decoded:
            self._out.write(decoded)
            self.size += len(decoded)


class _Base64File:
    """Base64 text in, decoded bytes out to a file, as the email package decodes it.

    That is ``binascii.a2b_base64`` without strict mode: characters outside the alphabet are
    skipped, a run of ``=`` that completes a group ends the data (the rest is ignored), other
    ``=`` are skipped, and a final group of 2 or 3 characters is decoded as if padded. A final
    group of 1 character cannot be decoded: ``undecodable`` is then set (the email package
    then returns the encoded text itself, line breaks removed).
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._carry = b""  # data characters of an unfinished group (fewer than 4)
        self._pads = b""  # a run of "=" at the end of what was fed, not yet judged
        self.size = 0
        self.ended = False
        self.undecodable = False

    def feed(self, text: bytes, *, final: bool = False) -> None:
        if self.ended:
            return
        segments = _PAD_RUN.split(self._pads + text.translate(None, _B64_JUNK))
        self._pads = b""
        # split() with a group alternates data and "=" runs, data first and last.
        for index, segment in enumerate(segments):
            if index % 2 == 0:
                if segment:
                    data = self._carry + segment
                    whole = len(data) - len(data) % 4
                    self._write(binascii.a2b_base64(data[:whole]))
                    self._carry = data[whole:]
                continue
            if index == len(segments) - 2 and not segments[-1] and not final:
                self._pads = segment  # more "=" may follow in the next chunk
                return
            group = len(self._carry)
            if group >= 2 and group + len(segment) >= 4:
                self._finish_group()
                self.ended = True
                return
        if final:
            if len(self._carry) == 1:
                self.undecodable = True
            elif self._carry:
                self._finish_group()

    def _finish_group(self) -> None:
        carry, self._carry = self._carry, b""
        self._write(binascii.a2b_base64(carry + b"=" * (4 - len(carry))))

    def _write(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self.size += len(data)


def _boundary_matcher(message: Message) -> Matcher | None:
    """The feed parser's test for a boundary line of this multipart; None without one."""
    try:
        boundary = message.get_boundary()
        if boundary is None:
            return None
        separator = b"--" + boundary.encode("ascii", "surrogateescape")
    except Exception:  # a boundary no line can match
        return None
    pattern = re.compile(
        b"(?P<sep>" + re.escape(separator) + rb")(?P<end>--)?(?P<ws>[ \t]*)"
        rb"(?P<linesep>\r\n|\r|\n)?$"
    )

    def matches(line: bytes) -> re.Match[bytes] | None:
        return pattern.match(line) if line.startswith(separator) else None

    return matches


class _Splitter:
    """Follows the MIME structure of one file, writing the skeleton and the spool files."""

    def __init__(self, reader: _Reader, source: Path, spool_dir: Path, threshold: int) -> None:
        self.reader = reader
        self.source = source
        self.spool_dir = spool_dir
        self.threshold = threshold
        self.out: list[bytes] = []
        self.spooled: dict[str, SpooledBody] = {}
        self._token = secrets.token_hex(8)
        self._headers = email.parser.BytesHeaderParser(policy=email.policy.compat32)

    def run(self) -> None:
        self._part("text/plain", 0)
        self._copy()

    def _copy(self) -> None:
        """Copy the rest of the current part into the skeleton."""
        while piece := self.reader.readline():
            self.out.append(piece)

    def _read_headers(self) -> tuple[list[bytes], bytes]:
        """The header lines of a part and the blank line after them (b"" if none)."""
        lines: list[bytes] = []
        while True:
            line, offset = self.reader.full_line()
            if not line:
                return lines, b""
            if not _HEADER_LINE.match(line):
                if line[:1] in (b"\r", b"\n"):
                    return lines, line
                self.reader.unread(line, offset, starts_line=True)
                return lines, b""
            lines.append(line)

    def _part(self, default_type: str, depth: int) -> None:
        lines, blank = self._read_headers()
        message = self._headers.parsebytes(b"".join(lines))
        message.set_default_type(default_type)
        if depth <= _MAX_NESTING and blank and may_spool(message):
            # In a multipart, the line ending before the next boundary is the boundary's.
            self._leaf(lines, blank, transfer_encoding(message), cut_last_eol=depth > 0)
            return
        if depth <= _MAX_NESTING and blank and may_spool_message(message):
            self._attached_mail(lines, blank)
            return
        self.out.extend(lines)
        self.out.append(blank)
        matches = _boundary_matcher(message)
        if depth <= _MAX_NESTING and message.get_content_maintype() == "multipart" and matches:
            digest = message.get_content_type() == "multipart/digest"
            self._multipart(matches, "message/rfc822" if digest else "text/plain", depth)
        else:
            self._copy()

    def _multipart(self, matches: Matcher, default_type: str, depth: int) -> None:
        """Preamble, parts and epilogue, as ``email.feedparser.FeedParser._parsegen``."""
        reader = self.reader
        while True:
            line = reader.readline()
            if not line:
                return  # the end, or an enclosing boundary: no closing boundary
            self.out.append(line)
            found = matches(line) if reader.starts_line else None
            if found is None:
                continue  # the preamble
            if found.group("end"):
                self._copy()  # the epilogue
                return
            while True:  # more boundary lines in a row separate nothing
                line = reader.readline()
                if line and reader.starts_line and matches(line):
                    self.out.append(line)
                    continue
                if line:
                    reader.unread(line, reader.offset, starts_line=reader.starts_line)
                break
            reader.boundaries.append(matches)
            try:
                self._part(default_type, depth + 1)
            finally:
                reader.boundaries.pop()

    def _leaf(self, lines: list[bytes], blank: bytes, encoding: str, *, cut_last_eol: bool) -> None:
        """A spoolable part: kept as it is when small, else decoded to a file and cut out.

        Quoted-printable and the identity encodings leave the body's last line ending out when
        ``cut_last_eol``, as the email package does in a multipart (base64 has no use for it)."""
        reader = self.reader
        pieces: list[bytes] = []
        pending = 0
        start: int | None = None
        total = 0
        spool: _Base64File | _IdentityFile | _QuotedPrintableFile | None = None
        key = f"{self._token}-{len(self.spooled) + 1}"
        path = self.spool_dir / f"{key}.bin"
        with contextlib.ExitStack() as stack:
            while piece := reader.readline():
                if start is None:
                    start = reader.offset
                pieces.append(piece)
                pending += len(piece)
                total += len(piece)
                if spool is None and total <= self.threshold:
                    continue
                if spool is None:
                    out = stack.enter_context(open(path, "xb"))
                    if encoding == "base64":
                        spool = _Base64File(out)
                    elif encoding == "quoted-printable":
                        spool = _QuotedPrintableFile(out, cut_last_eol)
                    else:
                        spool = _IdentityFile(out, cut_last_eol)
                    pending = _BATCH  # hand over what was held back at once
                if pending >= _BATCH:
                    spool.feed(b"".join(pieces))
                    pieces.clear()
                    pending = 0
            if spool is None:
                self.out.extend(lines)
                self.out.append(blank)
                self.out.extend(pieces)
                return
            spool.feed(b"".join(pieces), final=True)
            pieces.clear()
        size = spool.size
        if spool.undecodable and start is not None:
            size = self._copy_encoded(path, start, total)
        self.out.extend(lines)
        self.out.append(_MARKER_NAME + key.encode("ascii") + blank)
        self.out.append(blank)
        self.spooled[key] = SpooledBody(path=path, size=size)

    def _attached_mail(self, lines: list[bytes], blank: bytes) -> None:
        """An attached mail: kept as it is when small, else copied to a file as it is, its
        header block left in the skeleton (see the module docstring)."""
        inner, inner_blank = self._read_headers()
        if not inner_blank:  # no body to speak of: nothing worth a file
            self.out.extend([*lines, blank, *inner])
            self._copy()
            return
        head = [*inner, inner_blank]
        held: list[bytes] = []
        total = sum(map(len, head))
        key = f"{self._token}-{len(self.spooled) + 1}"
        path = self.spool_dir / f"{key}.eml"
        size = 0
        with contextlib.ExitStack() as stack:
            out: BinaryIO | None = None
            while piece := self.reader.readline():
                held.append(piece)
                total += len(piece)
                if out is None and total <= self.threshold:
                    continue
                if out is None:
                    out = stack.enter_context(open(path, "xb"))
                    out.writelines(head)
                    size = sum(map(len, head))
                if len(held) > 1:  # the last piece waits: its line ending may be the part's end
                    data = b"".join(held[:-1])
                    out.write(data)
                    size += len(data)
                    del held[:-1]
            if out is None:
                self.out.extend([*lines, blank, *head, *held])
                return
            last = held[-1] if held else b""
            # The line ending before the next boundary belongs to the boundary (RFC 2046).
            if last.endswith(b"\r\n"):
                last = last[:-2]
            elif last.endswith((b"\n", b"\r")):
                last = last[:-1]
            out.write(last)
            size += len(last)
        self.out.extend([*lines, _MARKER_NAME + key.encode("ascii") + blank, blank, *head])
        self.spooled[key] = SpooledBody(path=path, size=size)

    def _copy_encoded(self, path: Path, start: int, length: int) -> int:
        """The email package's answer to base64 it cannot decode: the text, without breaks."""
        size = 0
        with open(self.source, "rb") as source, open(path, "wb") as out:
            source.seek(start)
            while length > 0:
                chunk = source.read(min(_BATCH, length))
                if not chunk:
                    break
                length -= len(chunk)
                data = chunk.translate(None, b"\r\n")
                out.write(data)
                size += len(data)
        return size
