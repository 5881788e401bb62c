"""`inbox-daemon cases document` through the real command, on SQLite and PostgreSQL: the HTML
and the PDF of a case, with its public conversation and never its internal notes; the HTML
rendered by a real headless Chromium; the template beside rules.yaml; one-line errors."""

from __future__ import annotations

import asyncio
import html.parser
import io
import os
import pty
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pypdf
import pytest
import structlog

from inbox_daemon.cli import main
from inbox_daemon.document import DEFAULT_TEMPLATE, TEMPLATE_NAME
from tests.conftest import IN_CI, drop_postgres_database, make_postgres_database

RULES = """\
version: 1
users: [{id: alice, name: Alice, email: alice@ours.example}]
teams: [{id: tier1, members: [alice]}]
queues: [{id: general, team: tier1}]
business_hours:
  office:
    timezone: Europe/Berlin
    hours: {mon: "09:00-17:00", tue: "09:00-17:00", wed: "09:00-17:00", thu: "09:00-17:00",
            fri: "09:00-17:00"}
sla:
  standard: {first_response: {medium: 4h}, resolve_by: {medium: 2d}, business_time: true}
accounts:
  - {id: acme, name: Acme Corp, domains: [acme.example]}
default: {queue: general, sla: standard}
"""

#: Customer text that would run in a browser if it were not escaped.
PAYLOAD = (
    '<script>document.title="PWNED"</script>'
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
)
MAIL = (
    "From: Ann Example <ann@acme.example>\r\nTo: support@ours.example\r\n"
    "Subject: Printer <b>smokes</b>\r\nMessage-ID: <doc-1@acme.example>\r\n"
    "Date: Mon, 02 Mar 2026 09:00:00 +0100\r\n\r\n"
    f"The printer smokes. {PAYLOAD}\r\nPlease help.\r\n"
)
REPLY = "Please unplug the printer; a technician comes on Tuesday."
NOTE = "INTERNAL-NOTE-7731 the customer dropped it, do not tell them"
TASK = "INTERNAL-TASK-7732 order a fuser from the warehouse"
CALL_IN = "INTERNAL-CALL-7733 customer called, printer still smokes"
CALL_OUT = "INTERNAL-CALL-7734 called the customer back, no answer"
RESOLUTION = "The fuser unit was replaced."


class Cli:
    """The real command in a subprocess (its stdin, stdout and terminal as they are)."""

    def __init__(self, home: Path, db_url: str) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_DAEMON_")}
        self.env["INBOX_DAEMON_DATABASE__URL"] = db_url

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "inbox_daemon", *args], cwd=self.home, env=self.env,
            input=stdin.encode() if stdin is not None else None, capture_output=True, timeout=60,
        )  # fmt: skip

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def case_home(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cli]:
    """CAS-000001, made through the command: a customer's hostile mail, our reply, an
    internal note, a task, two phone calls, resolved. Made once per backend; the tests only
    read it."""
    home = tmp_path_factory.mktemp("document")
    postgres = request.param == "postgres"
    url = asyncio.run(make_postgres_database()) if postgres else f"sqlite:///{home / 'inbox.db'}"
    try:
        cli = Cli(home, url)
        cli.ok("init", ".")
        (home / "rules.yaml").write_text(RULES)
        assert cli.ok("ingest", stdin=MAIL).strip() == "created CAS-000001"
        cli.ok("cases", "reply", "CAS-000001", REPLY, "--as", "alice")
        cli.ok("cases", "note", "CAS-000001", NOTE, "--as", "alice")
        cli.ok("cases", "task", "CAS-000001", TASK, "--as", "alice")
        cli.ok("cases", "call", "CAS-000001", "--direction", "in", CALL_IN, "--as", "alice")
        cli.ok("cases", "call", "CAS-000001", "--direction", "out", CALL_OUT, "--as", "alice")
        cli.ok("cases", "resolve", "CAS-000001", "--resolution", RESOLUTION, "--as", "alice",
               "--complete-open-activities")  # fmt: skip
        shown = cli.ok("cases", "show", "CAS-000001")
        assert all(text[:20] in shown for text in (NOTE, TASK, CALL_IN, CALL_OUT))
        yield cli
    finally:
        if postgres:
            asyncio.run(drop_postgres_database(url))


class Document:
    """``inbox-daemon cases document`` run in this process (``inbox_daemon.cli.main``)."""

    def __init__(self, home: Path, capture: pytest.CaptureFixture[bytes]) -> None:
        self.home = home
        self.capture = capture

    def __call__(self, *args: str) -> tuple[int, bytes, str]:
        config = str(self.home / "inbox-daemon.toml")
        code = main(["cases", "document", *args, "--config", config])
        out, err = self.capture.readouterr()
        return code, out, err.decode()

    def ok(self, *args: str) -> bytes:
        code, out, err = self(*args)
        assert code == 0, err
        return out

    def refused(self, *args: str) -> str:
        code, out, err = self(*args)
        assert (code, out) == (1, b"")
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("inbox-daemon: error: ")
        return lines[0].removeprefix("inbox-daemon: error: ")


@pytest.fixture
def document(
    case_home: Cli, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> Iterator[Document]:
    for name in [k for k in os.environ if k.startswith("INBOX_DAEMON_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("INBOX_DAEMON_DATABASE__URL", case_home.env["INBOX_DAEMON_DATABASE__URL"])
    capsysbinary.readouterr()
    yield Document(case_home.home, capsysbinary)
    # main() pointed the logs at this test's captured stderr, closed after it: undo that, or
    # the next test to log a warning fails writing to a closed file.
    structlog.reset_defaults()


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_the_html_document_shows_the_public_case_and_no_note(document: Document) -> None:
    # `init` wrote the packaged template beside rules.yaml, for admins to change.
    assert (document.home / TEMPLATE_NAME).read_text() == DEFAULT_TEMPLATE.read_text()
    page = document.ok("CAS-000001").decode()
    assert "<h1>Printer &lt;b&gt;smokes&lt;/b&gt;</h1>" in page
    for shown in ("Case CAS-000001", "Ann Example", "ann@acme.example", "Acme Corp",
                  "Resolved", REPLY, RESOLUTION, "time zone Europe/Berlin"):  # fmt: skip
        assert shown in page, shown
    assert " CET" in page or " CEST" in page  # the calendar's zone, not UTC
    assert "The printer smokes. &lt;script&gt;document.title=&#34;PWNED&#34;&lt;/script&gt;" in page
    assert "<script" not in page
    assert "<img src=x" not in page
    assert "INTERNAL-" not in page
    assert "alice" not in page.lower()  # no agent, queue or team names for the customer
    assert "general" not in page

    written = document.home / "out" / "doc.html"
    written.parent.mkdir(exist_ok=True)
    said = document.ok("cas-000001", "-o", str(written)).decode()
    assert said == f"CAS-000001: html document written to {written}\n"
    assert unstamped(written.read_text()) == unstamped(page)


def unstamped(page: str) -> str:
    """A document without the time it was made at."""
    return re.sub(r"document made [^<]*", "", page)


@pytest.mark.slow
def test_the_pdf_document_has_the_reply_and_not_the_note(
    document: Document, case_home: Cli
) -> None:
    out = document.home / "CAS-000001.pdf"
    assert document.ok("CAS-000001", "--format", "pdf", "-o", str(out))
    text = pdf_text(out.read_bytes())
    for shown in ("CAS-000001", "Acme Corp", "Please unplug the printer", RESOLUTION):
        assert shown in text, shown
    assert "INTERNAL-" not in text

    # To a pipe, the bytes themselves.
    piped = case_home.run("cases", "document", "CAS-000001", "--format", "pdf")
    assert piped.returncode == 0, piped.stderr
    assert "INTERNAL-" not in pdf_text(piped.stdout)

    # To a terminal, a one-line error rather than binary.
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "inbox_daemon", "cases", "document", "CAS-000001",
             "--format", "pdf"],
            cwd=case_home.home, env=case_home.env, stdout=follower, stderr=subprocess.PIPE,
            timeout=60,
        )  # fmt: skip
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 1
    assert done.stderr.decode().strip().splitlines() == [
        "inbox-daemon: error: a PDF is binary: write it with -o FILE, or pipe or redirect stdout"
    ]


def test_a_missing_case_or_a_broken_template_is_one_line(document: Document) -> None:
    out = document.home / "never.pdf"
    assert "CAS-000099" in document.refused("CAS-000099", "--format", "pdf", "-o", str(out))
    assert not out.exists()

    template = document.home / TEMPLATE_NAME
    try:
        template.write_text("<h1>{{ case.number }}</h1>\n<p>{{ case.title }}\n{% endif %}\n")
        said = document.refused("CAS-000001", "-o", str(out))
        assert said.startswith(f"{template}:3: case document template: ")
        assert not out.exists()

        template.write_text("<h1>{{ case.number }}</h1>\n<p>For {{ customer.name }}</p>\n")
        assert document.ok("CAS-000001") == b"<h1>CAS-000001</h1>\n<p>For Ann Example</p>"

        template.unlink()  # none beside rules.yaml: the packaged one
        assert b"<h2>Conversation</h2>" in document.ok("CAS-000001")
    finally:
        template.write_text(DEFAULT_TEMPLATE.read_text())


# --- in a real browser ---------------------------------------------------------------------


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Debian's chromium is not installed (scripts/test.sh installs it)"
        if IN_CI:
            pytest.fail(f"{message}, and CI must run the browser tests")
        pytest.skip(message)
    return found


class _Text(html.parser.HTMLParser):
    """The visible text of a page, its elements' tags and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._hidden = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"
        self._hidden += tag in ("style", "script", "title")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "script", "title")
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._hidden:
            self.text.append(data)


@pytest.mark.slow
def test_chromium_renders_the_document_as_text_without_running_customer_markup(
    document: Document, tmp_path: Path
) -> None:
    browser = chromium()
    page = tmp_path / "CAS-000001.html"
    document.ok("CAS-000001", "-o", str(page))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip

    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60
    )
    assert dom.returncode == 0, dom.stderr
    seen = _Text()
    seen.feed(dom.stdout)
    text = " ".join(" ".join(seen.text).split())
    assert seen.title == "Case CAS-000001: Printer <b>smokes</b>"  # the script never ran
    for shown in ("Case CAS-000001", "Printer <b>smokes</b>", "Acme Corp", REPLY, RESOLUTION,
                  'The printer smokes. <script>document.title="PWNED"</script>'):  # fmt: skip
        assert shown in text, shown
    assert "INTERNAL-" not in dom.stdout
    tags = [tag for tag, _ in seen.tags]
    assert "script" not in tags
    assert "img" not in tags
    assert not any("data-pwned" in attrs or "onerror" in attrs for _, attrs in seen.tags)

    shot = tmp_path / "CAS-000001.png"
    done = subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000  # a page of text, not a blank one
    if os.environ.get("INBOX_DAEMON_KEEP_SCREENSHOT"):  # to look at it by hand
        shutil.copy(shot, os.environ["INBOX_DAEMON_KEEP_SCREENSHOT"])
