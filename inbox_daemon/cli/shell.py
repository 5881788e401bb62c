"""How the command behaves toward the shell: a wrong argument is one line with a hint (exit 2),
an error we raise on purpose one line (exit 1), a database that cannot be reached one line
naming its URL without the password (exit 75, EX_TEMPFAIL: try again later), a reader that
went away (``cases list | head``) a quiet exit 141 as for any Unix tool, Ctrl-C 130."""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Callable
from typing import NoReturn, TypeAlias

from sqlalchemy.exc import DBAPIError

from inbox_daemon.errors import DatabaseUnavailable, InboxError
from inbox_daemon.store.db import unavailable_reason

PROG = "inbox-daemon"
EX_USAGE = 2
EX_TEMPFAIL = 75
EX_SIGPIPE = 128 + 13
EX_INTERRUPTED = 130

_CHOICE = re.compile(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$")


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose refusal is one line and a hint, not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        hint = f"see `{self.prog} --help`"
        found = _CHOICE.match(message)
        if found is not None:
            given = found.group(2)
            choices = [c.strip(" '") for c in found.group(3).split(",")]
            close = difflib.get_close_matches(given, choices, n=1)
            if found.group(1) == "COMMAND":
                message = f"unknown command {given!r}"
                hint = f"`{self.prog} --help` lists them"
            else:
                message = f"{found.group(1)}: unknown value {given!r}"
                hint = f"it is one of {', '.join(choices)}"
            if close:
                message += f" (did you mean {close[0]!r}?)"
        self.exit(EX_USAGE, f"{self.prog}: error: {message}; {hint}\n")


#: The subcommands of a command, as ``add_subparsers`` gives them.
Commands: TypeAlias = "argparse._SubParsersAction[OneLineParser]"


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command's function; what it raises becomes one line on stderr and an exit code."""
    try:
        try:
            return func(args)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, inside the handler
    except BrokenPipeError:
        # Whoever read our output stopped (`| head`): say nothing more, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EX_SIGPIPE
    except DatabaseUnavailable as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    except InboxError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, DBAPIError) as exc:
        reason = unavailable_reason(exc)
        if reason is None:
            raise
        print(f"{PROG}: error: the database cannot be reached: {reason}", file=sys.stderr)
        return EX_TEMPFAIL
    except KeyboardInterrupt:
        return EX_INTERRUPTED


__all__ = ["EX_TEMPFAIL", "PROG", "Commands", "OneLineParser", "run_command"]
