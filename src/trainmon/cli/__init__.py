"""The ``trainmon`` command. Its ``--help`` is the reference.

One module per command group; this one only names them, and imports a command's module when
that command runs, so ``trainmon serve`` does not pay for the HTTP client that ``trainmon ls``
needs (and no command module imports another's, nor this one)."""

from __future__ import annotations

import importlib

import click

__all__ = ["main"]

# name -> "module:command", in the order `trainmon --help` has always listed them.
COMMANDS = {
    "ls": "trainmon.cli.jobs:ls_command",
    "status": "trainmon.cli.jobs:status_command",
    "cancel": "trainmon.cli.jobs:cancel_command",
    "rm": "trainmon.cli.jobs:rm_command",
    "sign-in-link": "trainmon.cli.jobs:sign_in_link_command",
    "sync": "trainmon.cli.sync:sync_command",
    "serve": "trainmon.cli.serve:serve_command",
    "run": "trainmon.cli.run:run_command",
    "logs": "trainmon.cli.run:logs_command",
    "demo": "trainmon.cli.demo:demo_command",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (click's documented lazy loading)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, name = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), name)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trainmon")
def main() -> None:
    """trainmon: see every training you have running, live, and cancel the bad ones."""
