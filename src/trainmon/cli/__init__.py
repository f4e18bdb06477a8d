"""The ``trainmon`` command. Its ``--help`` is the reference.

One module per command group; this one only makes the group and registers them, so no
command module imports another's (nor this one)."""

from __future__ import annotations

import click

from trainmon.cli.demo import demo_command
from trainmon.cli.jobs import (
    cancel_command,
    ls_command,
    rm_command,
    sign_in_link_command,
    status_command,
)
from trainmon.cli.run import logs_command, run_command
from trainmon.cli.serve import serve_command
from trainmon.cli.sync import sync_command

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trainmon")
def main() -> None:
    """trainmon: see every training you have running, live, and cancel the bad ones."""


# In the order `trainmon --help` has always listed them (click sorts them by name anyway).
for command in (
    ls_command,
    status_command,
    cancel_command,
    rm_command,
    sign_in_link_command,
    sync_command,
    serve_command,
    run_command,
    logs_command,
    demo_command,
):
    main.add_command(command)
