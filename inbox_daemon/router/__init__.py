"""The router: rules.yaml in, a routing decision per message out.

A pure function from a message (and what is known of its thread) to a
:class:`RoutingDecision`; the only I/O is reading the rules file at load. The package is split
by job: :mod:`~inbox_daemon.router.source` (YAML with positions),
:mod:`~inbox_daemon.router.schema`, :mod:`~inbox_daemon.router.fields` and
:mod:`~inbox_daemon.router.validate` (the file's model and its errors),
:mod:`~inbox_daemon.router.checks` (cross-references), :mod:`~inbox_daemon.router.conditions`,
:mod:`~inbox_daemon.router.matchers` and :mod:`~inbox_daemon.router.prefilter` (compiled
conditions), :mod:`~inbox_daemon.router.compiler`, :mod:`~inbox_daemon.router.engine`
(evaluate, explain), :mod:`~inbox_daemon.router.assign` (picking an owner) and
:mod:`~inbox_daemon.router.loader`.
"""

from __future__ import annotations

from inbox_daemon.router.assign import pick_assignee
from inbox_daemon.router.engine import (
    Actions,
    CompiledRules,
    Explanation,
    RoutingDecision,
    RuleTrace,
    ThreadFacts,
    evaluate,
    explain,
    format_explanation,
)
from inbox_daemon.router.loader import (
    LoadedRules,
    check_queue_removal,
    load_rules,
    load_rules_text,
    summary,
)
from inbox_daemon.router.schema import RulesErrors

__all__ = [
    "Actions",
    "CompiledRules",
    "Explanation",
    "LoadedRules",
    "RoutingDecision",
    "RuleTrace",
    "RulesErrors",
    "ThreadFacts",
    "check_queue_removal",
    "evaluate",
    "explain",
    "format_explanation",
    "load_rules",
    "load_rules_text",
    "pick_assignee",
    "summary",
]
