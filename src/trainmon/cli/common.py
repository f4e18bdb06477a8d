"""What every ``trainmon`` command shares: the server URL option, the API client, one-line
errors and safe terminal output."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from trainmon.settings import SettingsError
from trainmon.terminal import terminal_text

if TYPE_CHECKING:
    from trainmon.client import ApiClient

# httpx and Rich are imported where used: `trainmon serve` needs neither, and on a cold start
# they cost it ~150 ms.

url_option = click.option(
    "--url",
    envvar="TRAINMON_URL",
    default=None,
    help="Server URL [env TRAINMON_URL; default: the local server].",
)


@contextlib.contextmanager
def api(url: str | None) -> Iterator[ApiClient]:
    """A client whose errors end the command with one line and exit code 1."""
    from trainmon.client import ApiClient, ClientError

    try:
        with ApiClient(url) as client:
            yield client
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None


@contextlib.contextmanager
def settings_errors() -> Iterator[None]:
    """A setting that cannot be used ends the command with one line."""
    try:
        yield
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def shown(text: str, *, keep_layout: bool = False) -> str:
    """Untrusted text for Rich: control characters made visible, ``[markup]`` kept literal."""
    from rich.markup import escape

    return escape(terminal_text(text, keep_layout=keep_layout))
