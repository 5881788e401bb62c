"""Plain text from an HTML mail body, for messages that carry no text/plain part.

Owns one function, :func:`html_to_text`, built on the standard library's ``html.parser``:
script, style and similar elements are dropped, block elements and ``<br>`` become line
breaks, list items get a dash, table cells are separated by spaces, entities are unescaped
and runs of blank lines are collapsed. It never raises: when ``html.parser`` chokes, a regular
expression tag stripper takes over.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_SKIP = frozenset({"script", "style", "title", "template", "noscript", "svg", "xml", "object"})
_BLOCK = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "center",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "main",
        "nav",
        "ol",
        "section",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "ul",
    }
)
_PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table"})
_CELL = frozenset({"td", "th"})
_MAX_MARKUP = 2_000_000
_UNOPENED_LT = re.compile(r"<(?!!--)(?![^<>]{0,4096}>)")
_UNCLOSED_SECTION = re.compile(r"<!\[(?![^<>]{0,4096}\]\s*>)")
_WHITESPACE = re.compile(r"[ \t\r\n\f\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skip_depth = 0
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
        elif tag == "br":
            self.chunks.append("\n")
        elif tag == "li":
            self.chunks.append("\n- ")
        elif tag in _CELL:
            self.chunks.append(" ")
        elif tag == "pre":
            self.pre_depth += 1
            self.chunks.append("\n")
        elif tag in _PARAGRAPH:
            self.chunks.append("\n\n")
        elif tag in _BLOCK:
            self.chunks.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br" or tag in _BLOCK:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
            self.chunks.append("\n")
        elif tag in _PARAGRAPH:
            self.chunks.append("\n\n")
        elif tag in _BLOCK:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.pre_depth:
            self.chunks.append(data.replace("\r\n", "\n").replace("\u00a0", " "))
        else:
            self.chunks.append(_WHITESPACE.sub(" ", data))


def _tidy(text: str) -> str:
    lines = [line.strip(" \t") for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")


_RE_SKIP = re.compile(r"<(script|style|title|template)\b.*?</\1\s*>", re.I | re.S)
_RE_BREAK = re.compile(r"<\s*(br|/p|/div|/tr|/li|/h\d|p|div|tr|li)\b[^>]*>", re.I)
_RE_TAG = re.compile(r"<[^<>]{0,4096}>")
_RE_COMMENT = re.compile(r"<!--[^>]{0,4096}?-->")


def _regex_fallback(markup: str) -> str:
    text = _RE_COMMENT.sub(" ", markup)
    text = _RE_SKIP.sub(" ", text)
    text = _RE_BREAK.sub("\n", text)
    text = _RE_TAG.sub(" ", text)
    text = html.unescape(text)
    lines = (_WHITESPACE.sub(" ", line) for line in text.split("\n"))
    return _tidy("\n".join(lines))


def _defuse(markup: str) -> str:
    """Escape the ``<`` that open nothing (and unterminated ``<![`` sections and comments), so
    ``html.parser`` stays linear.

    Python 3.11's parser rescans to the end of the input for every start tag or comment that is
    never closed (``"<a " * 30000`` took seconds); such a ``<`` is only text anyway.
    """
    last_close = markup.rfind("-->")
    if last_close < 0:
        markup = markup.replace("<!--", "&lt;!--")
    elif "<!--" in markup[last_close:]:
        cut = last_close + 3
        markup = markup[:cut] + markup[cut:].replace("<!--", "&lt;!--")
    if "<![" in markup:
        markup = _UNCLOSED_SECTION.sub("&lt;![", markup)
    return _UNOPENED_LT.sub("&lt;", markup)


def html_to_text(markup: str) -> str:
    """Readable plain text from HTML; never raises."""
    if "<" not in markup and "&" not in markup:
        return _tidy(markup)
    if len(markup) > _MAX_MARKUP:
        markup = markup[:_MAX_MARKUP]
    markup = _defuse(markup)
    parser = _Extractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # html.parser has had AttributeError/AssertionError bugs on junk markup
        return _regex_fallback(markup)
    return _tidy("".join(parser.chunks)).replace("\u00a0", " ")
