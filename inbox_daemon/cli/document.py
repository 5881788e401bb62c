"""``cases document``: a case's customer-facing document, as HTML or PDF, to stdout or a file."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from inbox_daemon import document
from inbox_daemon.cli.common import UsageError, _run, _settings, _with_service
from inbox_daemon.cli.shell import Commands, OneLineParser


def cmd_cases_document(args: argparse.Namespace) -> int:
    if args.format == "pdf" and args.output is None and sys.stdout.isatty():
        raise UsageError("a PDF is binary: write it with -o FILE, or pipe or redirect stdout")
    folder = _settings(args).rules_path.parent
    template = document.read_template(folder)
    view = _run(_with_service(args, lambda svc: svc.show(args.number), with_rules="if_valid"))
    html = document.render_html(view, template, now=datetime.now(UTC))
    content = (
        document.to_pdf(html, template.path.parent)
        if args.format == "pdf"
        else html.encode("utf-8")
    )
    if args.output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
        return 0
    out = Path(args.output)
    try:
        out.write_bytes(content)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    print(f"{view.case.number}: {args.format} document written to {out}")
    return 0


def add_document_command(
    cases: Commands,
    common: OneLineParser,
) -> None:
    p = cases.add_parser(
        "document",
        parents=[common],
        help="the case's customer-facing document (no internal notes), HTML or PDF",
    )
    p.add_argument("number")
    p.add_argument("--format", choices=["html", "pdf"], default="html")
    p.add_argument("-o", "--output", metavar="FILE", help="write it to FILE (default: stdout)")
    p.set_defaults(func=cmd_cases_document)
