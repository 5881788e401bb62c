"""Quoted-reply stripping: the new part of a reply's plain text, without the old conversation.

Owns :func:`strip_quoted_reply`. It works line by line in two passes, in the spirit of
GitHub's email_reply_parser:

1. top down, the first *hard cut* ends the new text: an ``-----Original Message-----``
   separator (several languages), an Outlook ``From: / Sent:`` header block, a "reply above
   this line" marker, an ``On ... wrote:`` line that is *not* followed by ``>`` quoting, or the
   signature delimiter ``-- `` (also ``--``);
2. bottom up, trailing ``>``-quoted lines, blank lines, separator lines, "Sent from my iPhone"
   lines and the ``On ... wrote:`` header above a trailing quote are dropped.

Quoted lines *followed by* new text (interleaved or bottom-posted replies) stay, because the new
text needs them for context. When stripping would leave nothing, the whole text is returned.
Every regular expression is anchored and bounded, so a 60,000-character line costs little.
"""

from __future__ import annotations

import re

__all__ = ["strip_quoted_reply"]

_MAX_LINE = 1000

# "On <date>, <person> wrote:" in English, German, French, Spanish, Dutch, Italian, Portuguese,
# Scandinavian, Polish and Czech; may wrap over up to three lines.
_ON_WROTE = re.compile(
    r"""^\s*(?:
        on\b.{0,400}\bwrote\s?:
      | am\b.{0,400}\bschrieb\b.{0,200}:
      | le\b.{0,400}\ba\ [ée]crit\s?:
      | el\b.{0,400}\bescribi[óo]\s?:
      | op\b.{0,400}\bschreef\b.{0,200}:
      | il\b.{0,400}\bha\ scritto\s?:
      | em\b.{0,400}\bescreveu\s?:
      | (?:den|på)\b.{0,400}\bskrev\b.{0,200}:
      | (?:w\ dniu|dnia)\b.{0,400}\bnapisa[łl]a?\b.{0,200}:
      | dne\b.{0,400}\bnapsal[a]?\b.{0,200}:
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
# "<person> wrote:" without the date: trusted only right above a ">"-quoted block.
_ANY_WROTE = re.compile(
    r"""^.{0,400}\b(?:wrote|schrieb|a\ écrit|escribió|schreef|ha\ scritto|escreveu|skrev
      |napisał|napisała|napsal|пишет|написал|написала)\s?:\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
# How every _ON_WROTE header begins (a necessary condition, tested on its first line alone:
# "w" stands for "w dniu", which a wrapped header may split after the "w").
_ON_WROTE_START = re.compile(r"\s*(?:on|am|le|el|op|il|em|den|på|w|dnia|dne)\b", re.IGNORECASE)
_MAILMAN_RULE = re.compile(r"^_{20,}\s*$")
_ORIGINAL = re.compile(
    r"""^\s*[-_=*]{2,}\s*(?:original\ message|ursprüngliche\ nachricht|message\ d'origine
      |mensaje\ original|oorspronkelijk\ bericht|messaggio\ originale|mensagem\ original
      |originalmeddelande|oprindelig\ meddelelse|opprinnelig\ melding|alkuperäinen\ viesti
      |wiadomość\ oryginalna|původní\ zpráva|исходное\ сообщение)\s*[-_=*]{2,}\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_REPLY_ABOVE = re.compile(r"^.{0,80}\breply\ above\ this\ line\b", re.IGNORECASE | re.VERBOSE)
_FROM_LINE = re.compile(
    r"^\s*[*_]?(?:from|von|de|van|da|fra|från|od|от|kimden|lähettäjä)[*_]?\s?:[*_]?\s*\S",
    re.IGNORECASE,
)
_SENT_LINE = re.compile(
    r"""^\s*[*_]?(?:sent|date|gesendet|datum|envoy[ée]|enviado|fecha|verzonden|inviato|data
      |skickat|sendt|wysłano|odesláno|отправлено|дата|tarih|lähetetty)[*_]?\s?:""",
    re.IGNORECASE | re.VERBOSE,
)
_FORWARD_MARK = re.compile(
    r"forwarded\ message|begin\ forwarded|weitergeleitete\ nachricht|message\ transf[ée]r[ée]"
    r"|mensaje\ reenviado|doorgestuurd\ bericht|messaggio\ inoltrato",
    re.IGNORECASE | re.VERBOSE,
)
_SIG_DELIMITER = re.compile(r"^--[ \t]?$")
_SENT_FROM = re.compile(
    r"^\s*(?:sent\ from\ my\ (?:[\w.-]+\s*){1,4}|sent\ from\ (?:outlook|mail)\ for\ \w+"
    r"|von\ meinem\ [\w-]+(?:\ [\w-]+)?\ gesendet|envoy[ée]\ de\ mon\ [\w-]+"
    r"|enviado\ desde\ mi\ [\w-]+|get\ outlook\ for\ \w+)\s*\.?$",
    re.IGNORECASE | re.VERBOSE,
)
_SEPARATOR = re.compile(r"^[\s\-_=*~#]*$")


def _quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _on_wrote_at(lines: list[str], index: int, *, strict: bool) -> int:
    """How many lines (1-3) starting at ``index`` form an "On ... wrote:" header, or 0.

    ``strict`` accepts only the "On <date> ... wrote:" forms, not a bare "<person> wrote:".
    """
    first = lines[index][:_MAX_LINE].strip()
    if first and _ON_WROTE_START.match(first) is None:
        # Every line of a body passes through here: skip joining it with the next two and
        # matching _ON_WROTE three times when its first word already rules that out.
        if strict or _ANY_WROTE.match(first) is None:
            return 0
        return 1
    joined = ""
    for span in range(1, 4):
        if index + span > len(lines):
            break
        part = lines[index + span - 1][:_MAX_LINE]
        if span > 1 and (not part.strip() or _quoted(part)):
            break
        joined = f"{joined} {part.strip()}" if joined else part.strip()
        if _ON_WROTE.match(joined) is not None:
            return span
        if span == 1 and not strict and _ANY_WROTE.match(joined) is not None:
            return span
    return 0


def _reply_above(head: str) -> bool:
    """A "reply above this line" marker (within the first 80 characters).

    _REPLY_ABOVE backtracks over up to 80 characters of every line, so a plain substring test
    rules out nearly all lines first. It is implied by the case-insensitive match: no letter
    of "reply above th" has a case variant outside ASCII (only i and s have: İ ı ſ).
    """
    return "reply above th" in head.lower() and _REPLY_ABOVE.match(head) is not None


def _next_content(lines: list[str], start: int) -> str | None:
    for line in lines[start:]:
        if line.strip():
            return line
    return None


def _mailman_footer(lines: list[str], start: int) -> bool:
    following = _next_content(lines, start)
    return following is not None and "mailing list" in following[:_MAX_LINE].lower()


def _outlook_block_at(lines: list[str], index: int) -> bool:
    if _FROM_LINE.match(lines[index][:_MAX_LINE]) is None:
        return False
    window = lines[index + 1 : index + 7]
    if not any(_SENT_LINE.match(line[:_MAX_LINE]) for line in window):
        return False
    previous = [line for line in lines[max(0, index - 3) : index] if line.strip()]
    return not any(_FORWARD_MARK.search(line[:_MAX_LINE]) for line in previous)


def _hard_cut(lines: list[str]) -> int:
    """Index of the first line of the old conversation, or ``len(lines)``."""
    seen_text = False
    for index, line in enumerate(lines):
        head = line[:_MAX_LINE]
        if seen_text and not _quoted(line):
            if (
                _ORIGINAL.match(head)
                or _reply_above(head)
                or _SIG_DELIMITER.match(line)
                or _outlook_block_at(lines, index)
            ):
                return index
            if _MAILMAN_RULE.match(head) and _mailman_footer(lines, index + 1):
                return index
            span = _on_wrote_at(lines, index, strict=True)
            if span:
                following = _next_content(lines, index + span)
                if following is None or not _quoted(following):
                    return index
        if line.strip() and not _quoted(line):
            seen_text = True
    return len(lines)


def _drop_trailing(lines: list[str]) -> list[str]:
    end = len(lines)
    while end:
        line = lines[end - 1]
        head = line[:_MAX_LINE]
        if not line.strip() or _quoted(line) or _SEPARATOR.match(head) or _SENT_FROM.match(head):
            end -= 1
            continue
        header_found = False
        for span in (3, 2, 1):
            start = end - span
            if start >= 0 and _on_wrote_at(lines, start, strict=False) == span:
                end = start
                header_found = True
                break
        if not header_found:
            break
    return lines[:end]


def strip_quoted_reply(text: str) -> str:
    """The new part of a reply: drops the quoted conversation and the signature."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = normalized.split("\n")
    kept = _drop_trailing(lines[: _hard_cut(lines)])
    result = "\n".join(line.rstrip() for line in kept).strip("\n")
    if not result.strip():
        return normalized.strip()
    return result
