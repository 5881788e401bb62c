"""Commands an agent works a case with beyond its fields: pick, escalate, link, merge, close."""

from __future__ import annotations

import argparse

from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.enums import Priority
from inbox_daemon.cli.common import UsageError, _actor, _agent, _run, _with_service
from inbox_daemon.cli.shell import Commands, OneLineParser
from inbox_daemon.service import CaseService


def _report(outcome: lifecycle.Outcome, said: str = "") -> int:
    case = outcome.case
    print(f"{case.number}: {said or outcome.action + ' done'}, status {case.status.value}")
    return 0


def cmd_cases_pick(args: argparse.Namespace) -> int:
    async def go(svc: CaseService) -> lifecycle.Outcome:
        user = args.user or _agent(args, svc)
        if user is None:
            raise UsageError(
                "cases pick needs --user (or --as, or your login as an agent's os_user in"
                " rules.yaml)"
            )
        return await svc.pick(args.number, user, _actor(args, svc), force=args.force)

    outcome = _run(_with_service(args, go))
    return _report(outcome, f"worked by {outcome.case.worked_by}")


def cmd_cases_escalate(args: argparse.Namespace) -> int:
    async def go(svc: CaseService) -> tuple[lifecycle.Outcome, str]:
        outcome = await svc.escalate(
            args.number,
            _actor(args, svc),
            level=args.level,
            user=args.user,
            team=args.team,
            queue=args.queue,
            reason=args.reason,
        )
        return outcome, svc.directory.level_name(outcome.case.support_level)

    outcome, level = _run(_with_service(args, go))
    case = outcome.case
    where = ", ".join(
        f"{k} {v}" for k, v in (("team", case.owner_team), ("queue", case.queue),
                                ("owner", case.owner_user)) if v
    )  # fmt: skip
    return _report(outcome, f"escalated to {level}" + (f" ({where})" if where else ""))


def cmd_cases_edit(args: argparse.Namespace) -> int:
    changes = {
        "title": args.title, "description": args.description, "priority": args.priority,
        "category": args.category, "reason": args.reason, "account": args.account,
        "sla_policy": args.sla,
    }  # fmt: skip

    async def go(svc: CaseService) -> lifecycle.Outcome:
        return await svc.edit(args.number, _actor(args, svc), **changes)

    outcome = _run(_with_service(args, go))
    said = ", ".join(f"{c.field} {c.new if c.new is not None else '(none)'}"
                     for c in outcome.changes)  # fmt: skip
    return _report(outcome, f"edited: {said}")


def cmd_cases_link(args: argparse.Namespace) -> int:
    outcome = _run(
        _with_service(args, lambda svc: svc.link(args.number, args.parent, _actor(args, svc)))
    )
    return _report(outcome, f"parent case {outcome.case.parent_number}")


def cmd_cases_unlink(args: argparse.Namespace) -> int:
    outcome = _run(_with_service(args, lambda svc: svc.unlink(args.number, _actor(args, svc))))
    return _report(outcome, "no parent case")


def cmd_cases_merge(args: argparse.Namespace) -> int:
    outcome = _run(
        _with_service(args, lambda svc: svc.merge(args.number, args.into, _actor(args, svc)))
    )
    return _report(outcome, f"merged into {outcome.case.merged_into}")


def cmd_cases_close(args: argparse.Namespace) -> int:
    outcome = _run(_with_service(args, lambda svc: svc.close(args.number, _actor(args, svc))))
    return _report(outcome, "closed")


def add_work_commands(
    cases: Commands,
    common: OneLineParser,
    acting: OneLineParser,
) -> None:
    """Register these commands under ``cases``."""
    p = cases.add_parser("pick", parents=[common, acting], help="work a case from its queue")
    p.add_argument("number")
    p.add_argument("--user", help="who works it (default: the agent acting)")
    p.add_argument("--force", action="store_true", help="take over a case someone else is working")
    p.set_defaults(func=cmd_cases_pick)

    p = cases.add_parser("escalate", parents=[common, acting], help="raise the support level")
    p.add_argument("number")
    p.add_argument("--level", help="the support level to go to (default: the next one)")
    p.add_argument("--user", help="the agent who takes it")
    p.add_argument("--team", help="the team who takes it (default: the level's team)")
    p.add_argument("--queue", help="the queue it goes to (default: the level's queue)")
    p.add_argument("--reason", help="why it is escalated (kept in the audit trail)")
    p.set_defaults(func=cmd_cases_escalate)

    p = cases.add_parser(
        "edit", parents=[common, acting], help="reclassify: priority, category, account, SLA …"
    )
    p.add_argument("number")
    p.add_argument("--title")
    p.add_argument("--description")
    p.add_argument("--priority", choices=[x.value for x in Priority])
    p.add_argument("--category", help="a category, or none")
    p.add_argument("--reason", help="a reason, or none")
    p.add_argument("--account", help="an account of rules.yaml, or none")
    p.add_argument("--sla", help="an SLA policy of rules.yaml, or none (due dates are recounted)")
    p.set_defaults(func=cmd_cases_edit)

    p = cases.add_parser("link", parents=[common, acting], help="give a case a parent case")
    p.add_argument("number")
    p.add_argument("--parent", required=True, metavar="CASE")
    p.set_defaults(func=cmd_cases_link)

    p = cases.add_parser("unlink", parents=[common, acting], help="take a case's parent away")
    p.add_argument("number")
    p.set_defaults(func=cmd_cases_unlink)

    p = cases.add_parser(
        "merge", parents=[common, acting], help="close a duplicate, moving it into another case"
    )
    p.add_argument("number")
    p.add_argument("--into", required=True, metavar="CASE", help="the case that stays open")
    p.set_defaults(func=cmd_cases_merge)

    p = cases.add_parser("close", parents=[common, acting], help="close a resolved case (final)")
    p.add_argument("number")
    p.set_defaults(func=cmd_cases_close)
