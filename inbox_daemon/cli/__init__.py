"""The ``inbox-daemon`` command. Only this package exits; errors print as one line on stderr."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from inbox_daemon import __version__
from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.enums import Origin, Priority, Status
from inbox_daemon.cli.accounts import add_accounts_command
from inbox_daemon.cli.activities import cmd_cases_activity, cmd_cases_call, cmd_cases_task
from inbox_daemon.cli.cases import (
    _event_command,
    cmd_cases_assign,
    cmd_cases_close_resolved,
    cmd_cases_list,
    cmd_cases_new,
    cmd_cases_note,
    cmd_cases_reply,
    cmd_cases_resolve,
    cmd_cases_show,
    cmd_db_upgrade,
    cmd_init,
    cmd_run,
)
from inbox_daemon.cli.document import add_document_command
from inbox_daemon.cli.intake import (
    cmd_ingest,
    cmd_quarantine_list,
    cmd_quarantine_retry,
    cmd_quarantine_show,
    cmd_rules_check,
    cmd_rules_explain,
)
from inbox_daemon.cli.shell import PROG, OneLineParser, run_command
from inbox_daemon.cli.work import add_work_commands
from inbox_daemon.config import CONFIG_FILENAME
from inbox_daemon.logging import configure

__all__ = ["build_parser", "main"]


# --- parser ------------------------------------------------------------------------------------


SPENT_HELP = "the time it took, e.g. 45m, 1h30m, 1.5h (an allowance of hours counts it)"


CONFIG_HELP = f"config file (default: $INBOX_DAEMON_CONFIG or ./{CONFIG_FILENAME})"


def build_parser() -> argparse.ArgumentParser:
    common = OneLineParser(add_help=False)
    # Before or after the command: a subcommand's --config wins, and when it is not given it
    # leaves the value the top level parsed (SUPPRESS: no default of its own).
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    acting = OneLineParser(add_help=False)
    acting.add_argument("--as", dest="as_user", metavar="USER", help="the agent making the change")

    parser = OneLineParser(
        prog=PROG, description="Customer email and Slack messages in, service cases out."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="write a commented config and rules.yaml, create the database")
    p.add_argument("dir", nargs="?", default=".", help="folder to set up (default: here)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", parents=[common], help="run the daemon")
    p.add_argument("--once", action="store_true", help="one pass over every channel, then exit")
    p.set_defaults(func=cmd_run)

    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True, metavar="COMMAND"
    )
    p = db.add_parser("upgrade", parents=[common], help="apply pending schema migrations")
    p.set_defaults(func=cmd_db_upgrade)

    cases = sub.add_parser("cases", help="work with cases").add_subparsers(
        dest="cases_command", required=True, metavar="COMMAND"
    )
    p = cases.add_parser("new", parents=[common, acting], help="log a case (e.g. a phone call)")
    p.add_argument("--title", required=True)
    p.add_argument("--contact", required=True, help="customer email address or Slack user id")
    p.add_argument("--priority", choices=[x.value for x in Priority], default="medium")
    p.add_argument("--origin", choices=[x.value for x in Origin], default="phone")
    p.add_argument("--description")
    p.add_argument("--queue")
    p.set_defaults(func=cmd_cases_new)

    p = cases.add_parser("list", parents=[common], help="list cases, newest first")
    p.add_argument("--status", action="append", choices=[x.value for x in Status])
    p.add_argument("--queue")
    p.add_argument("--owner", metavar="USER")
    p.add_argument("--account", metavar="ID", help="only the cases of this account")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cases_list)

    p = cases.add_parser("show", parents=[common], help="a case with its activities and audit")
    p.add_argument("number")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cases_show)

    for name, helptext, func in (
        ("reply", "answer the customer through the case's channel", cmd_cases_reply),
        ("note", "add an internal note (never sent)", cmd_cases_note),
    ):
        p = cases.add_parser(name, parents=[common, acting], help=helptext)
        p.add_argument("number")
        p.add_argument("text")
        if name == "note":
            p.add_argument("--spent", metavar="TIME", help=SPENT_HELP)
        p.set_defaults(func=func)

    p = cases.add_parser("task", parents=[common, acting], help="add an open task to the case")
    p.add_argument("number")
    p.add_argument("subject", help="what is to be done")
    p.add_argument(
        "--due",
        metavar="WHEN",
        help="a duration from now (4h, 2d) or an ISO 8601 time (local unless it has an offset)",
    )
    p.add_argument("--assign", metavar="AGENT", help="the agent who is to do it")
    p.add_argument("--spent", metavar="TIME", help=SPENT_HELP)
    p.set_defaults(func=cmd_cases_task)

    p = cases.add_parser("call", parents=[common, acting], help="log a phone call on the case")
    p.add_argument("number")
    p.add_argument("--direction", required=True, choices=["in", "out"], help="who called whom")
    p.add_argument("text", help="what was said")
    p.add_argument("--spent", metavar="TIME", help=SPENT_HELP)
    p.set_defaults(func=cmd_cases_call)

    activity = cases.add_parser(
        "activity", help="complete or cancel an open activity"
    ).add_subparsers(dest="activity_command", required=True, metavar="COMMAND")
    for verb in ("complete", "cancel"):
        a = activity.add_parser(
            verb, parents=[common, acting], help=f"{verb} an open task of the case"
        )
        a.add_argument("number")
        a.add_argument("id", type=int, help="the activity's id (#N in `cases show`)")
        if verb == "complete":
            a.add_argument("--spent", metavar="TIME", help=SPENT_HELP)
        a.set_defaults(func=cmd_cases_activity, verb=verb)

    p = cases.add_parser("assign", parents=[common, acting], help="give the case to someone")
    p.add_argument("number")
    p.add_argument("--user")
    p.add_argument("--team")
    p.add_argument("--queue")
    p.set_defaults(func=cmd_cases_assign)

    add_work_commands(cases, common, acting)
    add_document_command(cases, common)

    p = cases.add_parser("release", parents=[common, acting], help="put a picked case back")
    p.add_argument("number")
    p.set_defaults(func=_event_command(lambda a: lifecycle.Release()))

    p = cases.add_parser("status", parents=[common, acting], help="in progress / waiting / hold")
    p.add_argument("number")
    p.add_argument("status", choices=["in_progress", "waiting_for_response", "on_hold"])
    p.set_defaults(func=_event_command(lambda a: lifecycle.SetStatus(Status(a.status))))

    p = cases.add_parser("resolve", parents=[common, acting], help="resolve a case")
    p.add_argument("number")
    p.add_argument("--resolution", required=True)
    settle = p.add_mutually_exclusive_group()
    settle.add_argument(
        "--cancel-open-activities", action="store_true", help="cancel its open activities"
    )
    settle.add_argument(
        "--complete-open-activities", action="store_true", help="complete its open activities"
    )
    p.set_defaults(func=cmd_cases_resolve)

    p = cases.add_parser("reactivate", parents=[common, acting], help="reopen a resolved case")
    p.add_argument("number")
    p.set_defaults(func=_event_command(lambda a: lifecycle.Reactivate()))

    p = cases.add_parser("cancel", parents=[common, acting], help="cancel a case (final)")
    p.add_argument("number")
    p.set_defaults(func=_event_command(lambda a: lifecycle.Cancel()))

    p = cases.add_parser(
        "close-resolved", parents=[common], help="close cases resolved past the waiting period"
    )
    p.set_defaults(func=cmd_cases_close_resolved)

    add_accounts_command(sub, common)

    rules = sub.add_parser("rules", help="check and explain rules.yaml").add_subparsers(
        dest="rules_command", required=True, metavar="COMMAND"
    )
    p = rules.add_parser("check", parents=[common], help="validate rules.yaml (all errors)")
    p.add_argument("file", nargs="?", help="the rules file (default: the config's [rules] path)")
    p.set_defaults(func=cmd_rules_check)
    p = rules.add_parser("explain", parents=[common], help="which rules a message matches, and why")
    p.add_argument("message", metavar="MESSAGE.eml")
    p.add_argument("--rules", metavar="FILE", help="the rules file (default: the config's)")
    p.add_argument("--at", metavar="TIME", help="evaluate at this ISO 8601 time (default: now)")
    p.add_argument("--mailbox", default="support", help="the mailbox it arrived in")
    p.add_argument(
        "--entitlement",
        choices=["ok", "exhausted"],
        default="ok",
        help="what the sender's account has left of its allowance (default: ok)",
    )
    p.set_defaults(func=cmd_rules_explain)

    p = sub.add_parser("ingest", parents=[common], help="take one mail from stdin (an MTA pipe)")
    p.add_argument("--mailbox", metavar="NAME", help="the mailbox it arrived in")
    p.set_defaults(func=cmd_ingest)

    quarantine = sub.add_parser("quarantine", help="messages set aside").add_subparsers(
        dest="quarantine_command", required=True, metavar="COMMAND"
    )
    p = quarantine.add_parser("list", parents=[common], help="messages waiting for a person")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument(
        "--ignored",
        action="store_true",
        help="the mail kept but answering no case (automatic, or from our own addresses)",
    )
    shown.add_argument("--all", action="store_true", help="every kind, also those dealt with")
    p.set_defaults(func=cmd_quarantine_list)
    p = quarantine.add_parser("show", parents=[common], help="why a message was set aside")
    p.add_argument("id", type=int)
    p.add_argument("--raw", action="store_true", help="print the whole raw message")
    p.set_defaults(func=cmd_quarantine_show)
    p = quarantine.add_parser(
        "retry", parents=[common], help="take a message in again (an ignored one as a case)"
    )
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_quarantine_retry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure("warning", "auto")  # `run` reconfigures from the settings
    return run_command(args.func, args)
