"""The text files admins keep beside rules.yaml (acknowledgement, notification and case
document templates): reading one as UTF-8 text, and finding the first bad ``$placeholder`` in a
``string.Template`` text. Each problem is a one-line :class:`ConfigError` naming the file."""

from __future__ import annotations

import string
from collections.abc import Collection
from pathlib import Path

from inbox_daemon.errors import ConfigError

__all__ = ["first_bad_placeholder", "read_template_file"]


def read_template_file(path: Path, what: str = "the template") -> str:
    """The file's text; a ConfigError saying it cannot be read or is not UTF-8 text."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: {what} is not UTF-8 text") from None


def first_bad_placeholder(text: str, known: Collection[str]) -> tuple[int, str] | None:
    """Where the first invalid or unknown placeholder of ``text`` starts, and what is wrong
    with it (the caller adds the file and position); None when every one is known."""
    for match in string.Template.pattern.finditer(text):
        if match.group("invalid") is not None:
            return match.start(), "invalid placeholder after '$' (write $$ for a dollar)"
        name = match.group("named") or match.group("braced")
        if name is not None and name not in known:
            names = ", ".join(f"${p}" for p in known)
            return match.start(), f"unknown placeholder ${name} (known: {names})"
    return None
