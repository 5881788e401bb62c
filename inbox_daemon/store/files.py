"""Attachments on disk, content-addressed by SHA-256 (never by the sender's file name).

``<root>/ab/cd/abcdef…`` holds the bytes whose SHA-256 is ``abcdef…``. Writes go to a temporary
file in the same folder, are flushed to disk, then renamed: a crash never leaves half a file
under a real name, and the same bytes are stored once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from inbox_daemon.messages import Attachment

CHUNK = 1 << 20


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> tuple[str, int]:
        """Store bytes; returns (sha256, size)."""
        return self.put_chunks([data])

    def put_attachment(self, attachment: Attachment) -> tuple[str, int]:
        """Store an attachment's bytes, held in memory or in a (spool) file."""
        if attachment.content is not None:
            return self.put(attachment.content)
        if attachment.path is not None:
            return self.put_file(attachment.path)
        raise ValueError(f"attachment {attachment.filename!r} has no bytes to store")

    def put_file(self, source: Path) -> tuple[str, int]:
        with source.open("rb") as fh:
            return self.put_chunks(iter(lambda: fh.read(CHUNK), b""))

    def put_chunks(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=self.root)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self.path_for(sha)
            if final.exists():
                tmp.unlink()
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                tmp.replace(final)
            return sha, size
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()
