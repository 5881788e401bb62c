"""The case service is the one writer of cases, activities, their files, receipts and audit.

Read from the source: outside ``inbox_daemon/service/`` (the writer) and ``inbox_daemon/store/``
(the queries it calls), no module constructs one of those rows, assigns to a field of one,
sends an INSERT/UPDATE/DELETE for its table, or calls the store's writing functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import inbox_daemon

PACKAGE = Path(inbox_daemon.__file__).parent
WRITER = ("service", "store")
ROWS = {"ActivityRow", "CaseRow", "AttachmentRow", "AuditRow", "ReceiptRow"}
#: The store's functions that write those rows (the service's tools).
STORE_WRITES = {
    "audit",
    "write_back",
    "new_row",
    "settle_activities",
    "mark_bounced",
    "next_case_number",
    "incoming_by_ts",
}
STATEMENTS = {"insert", "update", "delete"}


def _names(node: ast.AST | None) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} if node else set()


def _store_modules(tree: ast.Module) -> set[str]:
    """Local names bound to a module of ``inbox_daemon.store`` (``repo``, ``intake`` …)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "inbox_daemon.store":
            found |= {a.asname or a.name for a in node.names}
        if isinstance(node, ast.Import):
            found |= {
                a.asname or a.name for a in node.names if a.name.startswith("inbox_daemon.store.")
            }
    return found


def _assigned(targets: list[ast.expr]) -> list[ast.Attribute]:
    """The attributes an assignment writes: ``a.b =``, ``a.b, c = ``, ``a.b[k] = ``."""
    found: list[ast.Attribute] = []
    for target in targets:
        if isinstance(target, ast.Tuple | ast.List):
            found += _assigned(list(target.elts))
        elif isinstance(target, ast.Starred | ast.Subscript):
            found += _assigned([target.value])
        elif isinstance(target, ast.Attribute):
            found.append(target)
    return found


def violations(source: str, where: str = "<test>") -> list[str]:
    """Every place in ``source`` that writes one of :data:`ROWS` itself."""
    tree = ast.parse(source)
    store = _store_modules(tree)
    found: list[str] = []

    def say(node: ast.AST, what: str) -> None:
        found.append(f"{where}:{getattr(node, 'lineno', '?')}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ROWS:
                say(node, f"constructs {func.id}")
            if isinstance(func, ast.Name) and func.id in STATEMENTS:
                rows = ROWS & {n for arg in node.args for n in _names(arg)}
                if rows:
                    say(node, f"{func.id}() on {', '.join(sorted(rows))}")
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in store
                and func.attr in STORE_WRITES
            ):
                say(node, f"calls the store's {func.value.id}.{func.attr}")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            typed = {
                arg.arg
                for arg in [*node.args.args, *node.args.kwonlyargs]
                if ROWS & _names(arg.annotation)
            }
            for inner in ast.walk(node):
                if (
                    isinstance(inner, ast.AnnAssign)
                    and isinstance(inner.target, ast.Name)
                    and ROWS & _names(inner.annotation)
                ):
                    typed.add(inner.target.id)
            for inner in ast.walk(node):
                targets: list[ast.expr] = []
                if isinstance(inner, ast.Assign):
                    targets = inner.targets
                elif isinstance(inner, ast.AugAssign | ast.AnnAssign):
                    targets = [inner.target]
                for part in _assigned(targets):
                    if isinstance(part.value, ast.Name) and part.value.id in typed:
                        say(inner, f"assigns {part.value.id}.{part.attr}")
    return found


def test_nothing_outside_the_service_writes_cases_or_activities() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in WRITER:
            continue
        found += violations(path.read_text(encoding="utf-8"), str(relative))
    assert found == []


def test_the_check_finds_each_kind_of_write() -> None:
    source = """
from sqlalchemy import update
from inbox_daemon.store import cases as repo
from inbox_daemon.store.tables import ActivityRow, CaseRow

async def f(session, row: CaseRow, activity: ActivityRow | None) -> None:
    session.add(ActivityRow(case_id=1))
    await session.execute(update(ActivityRow).values(state="x"))
    repo.audit(session, 1, at=None, actor=None, action="x")
    row.status = "resolved"
    row.version += 1
    activity.flags, other = {}, 1
    mine: CaseRow = await session.get(CaseRow, 1)
    mine.queue = "q"
    row.flags["deleted"] = True
    seen[row.number] = row  # reading is fine
    safe = row.status
"""
    found = violations(source)
    assert sorted(line.split(": ", 1)[1] for line in found) == sorted(
        [
            "constructs ActivityRow",
            "update() on ActivityRow",
            "calls the store's repo.audit",
            "assigns row.status",
            "assigns row.version",
            "assigns activity.flags",
            "assigns mine.queue",
            "assigns row.flags",
        ]
    )
