"""The templates of the notifications agents get: shipped, or an admin's beside rules.yaml.

The shipped ``inbox_daemon/templates/notification.txt`` is replaced for every reason by a
``notification.txt`` beside rules.yaml, or for one reason by ``notification-<reason>.txt``
(``assigned``, ``routed``, ``escalated``, ``taken-over``, ``reopened``, ``reactivated``).
A template is ``Subject: …``, a blank line, then the text; ``$placeholders`` (see
:data:`PLACEHOLDERS`) are filled in, and a line whose placeholders are all empty (``Queue:
$queue`` for a case in no queue) is left out. Templates are checked when loaded — an unknown
placeholder or a missing subject is a :class:`ConfigError` naming the file and line — so a bad
one never reaches an agent: the daemon keeps the last good set.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from inbox_daemon.errors import ConfigError
from inbox_daemon.service.template_files import first_bad_placeholder, read_template_file

__all__ = [
    "DEFAULT_TEMPLATE",
    "PLACEHOLDERS",
    "REASONS",
    "NoticeTemplate",
    "NoticeTemplates",
    "load_notice_template",
    "load_notice_templates",
    "parse_notice_template",
]

DEFAULT_TEMPLATE = Path(__file__).parent.parent / "templates" / "notification.txt"
#: What a template may use: ``$reason`` is "assigned", ``$Reason`` "Assigned"; ``$told`` says
#: what happened to whom ("was assigned to you", "was escalated to your team Tier 2 (L2)").
PLACEHOLDERS = (
    "case_number", "title", "reason", "Reason", "told", "by", "customer", "account",
    "priority", "status", "queue", "team", "level",
)  # fmt: skip
#: The reasons a notification is sent for, as a file name spells them.
REASONS = ("assigned", "routed", "escalated", "taken-over", "reopened", "reactivated")
_SUBJECT = re.compile(r"^Subject:[ \t]*(.*)$")


@dataclass(frozen=True)
class NoticeTemplate:
    """A checked template: a subject line and a text."""

    source: Path
    subject: string.Template
    text: string.Template

    def render(self, values: Mapping[str, str]) -> tuple[str, str]:
        """(subject, text) with ``values`` filled in (every placeholder has one)."""
        subject = " ".join(self.subject.substitute(values).split())
        lines = []
        for line in self.text.template.splitlines():
            names = _names(string.Template(line))
            if names and all(not values.get(n, "") for n in names):
                continue  # nothing to say on this line
            lines.append(string.Template(line).substitute(values))
        return subject, "\n".join(lines).strip("\n")


@dataclass(frozen=True)
class NoticeTemplates:
    """The template of every reason: its own file, or the common one."""

    default: NoticeTemplate
    per_reason: Mapping[str, NoticeTemplate] = field(default_factory=dict)

    def for_reason(self, reason: str) -> NoticeTemplate:
        return self.per_reason.get(reason.replace(" ", "-"), self.default)


def _names(template: string.Template) -> list[str]:
    found = []
    for match in template.pattern.finditer(template.template):
        name = match.group("named") or match.group("braced")
        if name is not None:
            found.append(name)
    return found


def _check(path: Path, text: str, first_line: int) -> string.Template:
    problem = first_bad_placeholder(text, PLACEHOLDERS)
    if problem is not None:
        offset, what = problem
        raise ConfigError(f"{path}:{first_line + text.count(chr(10), 0, offset)}: {what}")
    return string.Template(text)


def parse_notice_template(path: Path, text: str) -> NoticeTemplate:
    """Check a template's text; :class:`ConfigError` names the file, the line and the fix."""
    head, _, body = text.partition("\n")
    found = _SUBJECT.match(head.strip("\ufeff\r"))
    if found is None or not found.group(1).strip():
        raise ConfigError(
            f"{path}:1: a notification template starts with 'Subject: …', then a blank line"
        )
    return NoticeTemplate(path, _check(path, found.group(1), 1), _check(path, body, 2))


def load_notice_template(path: Path) -> NoticeTemplate:
    """Read and check one template file."""
    return parse_notice_template(path, read_template_file(path))


def load_notice_templates(
    folder: Path | None = None, *, default: Path = DEFAULT_TEMPLATE
) -> NoticeTemplates:
    """The shipped template, overridden by ``notification*.txt`` files in ``folder`` (the
    folder of rules.yaml)."""
    common = folder / "notification.txt" if folder is not None else None
    base = load_notice_template(common if common is not None and common.is_file() else default)
    per_reason: dict[str, NoticeTemplate] = {}
    if folder is not None and folder.is_dir():
        for path in sorted(folder.glob("notification-*.txt")):
            reason = path.name.removeprefix("notification-").removesuffix(".txt")
            if reason not in REASONS:
                raise ConfigError(
                    f"{path}: no notification is sent for {reason!r}: name the file "
                    f"notification-<reason>.txt, a reason of {', '.join(REASONS)}"
                )
            per_reason[reason] = load_notice_template(path)
    return NoticeTemplates(base, per_reason)
