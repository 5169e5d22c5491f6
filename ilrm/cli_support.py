"""The one CLI style shared by ``python -m ilrm`` and ``python -m eval``.

A command is an ``add_args(parser)`` function and a ``run(args) -> exit code`` function, registered
under a name with ``@command(name, help)(add_args)`` on ``run``. :func:`run_commands` builds the parser
from the registry, dispatches, and turns :class:`~ilrm.errors.ILRMInputError` (input a person can
fix) into ``error: <message>`` on stderr and exit code 2; any other exception is a bug and propagates.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import ILRMInputError

AddArgs = Callable[[argparse.ArgumentParser], None]
RunCommand = Callable[[argparse.Namespace], int]
#: name → (help, add_args, run)
Commands = dict[str, tuple[str, AddArgs, RunCommand]]
#: ``command(name, help)(add_args)`` → a decorator of ``run``
CommandDecorator = Callable[[str, str], Callable[[AddArgs], Callable[[RunCommand], RunCommand]]]


def command_decorator(registry: Commands) -> CommandDecorator:
    """A ``command(name, help)(add_args)`` decorator that registers ``run`` into ``registry``."""

    def command(name: str, help: str) -> Callable[[AddArgs], Callable[[RunCommand], RunCommand]]:
        def wrap(add_args: AddArgs) -> Callable[[RunCommand], RunCommand]:
            def inner(run: RunCommand) -> RunCommand:
                registry[name] = (help, add_args, run)
                return run

            return inner

        return wrap

    return command


def build_parser(prog: str, description: str, registry: Commands) -> argparse.ArgumentParser:
    """An argument parser with one sub-command per registered command."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_args, _) in registry.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def run_commands(parser: argparse.ArgumentParser, registry: Commands, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; its exit code, or 2 with ``error: ...`` for bad input.

    argparse's own usage errors exit 2 as well (by raising ``SystemExit``), so both kinds of bad input
    share one exit code.
    """
    args = parser.parse_args(argv)
    try:
        return registry[args.command][2](args)
    except ILRMInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


__all__ = ["AddArgs", "CommandDecorator", "Commands", "RunCommand", "build_parser", "command_decorator", "run_commands"]
