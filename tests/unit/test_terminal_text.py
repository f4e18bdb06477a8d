"""The one function that makes untrusted text safe for a terminal."""

from __future__ import annotations

import pytest

from trainmon.terminal import terminal_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain name", "plain name"),
        ("ünïcödé ✓", "ünïcödé ✓"),
        ("\x1b[2J\x1b[Hcleared", "^[[2J^[[Hcleared"),  # clear screen, cursor home
        ("\x1b]0;pwned\x07title", "^[]0;pwned^Gtitle"),  # OSC window title, ended by BEL
        ("progress\rfake", "progress^Mfake"),  # CR would overwrite the line
        ("a\nb\tc", "a^Jb^Ic"),  # a table cell stays one line
        ("nul\x00del\x7f", "nul^@del^?"),
        ("\x9b31mred", "M-^[31mred"),  # C1 CSI: some terminals take it as ESC [
        ("\x85next line", "M-^Enext line"),
        ("back\x08space", "back^Hspace"),
        ("[red]x[/]", "[red]x[/]"),  # markup is not this function's business
    ],
)
def test_controls_are_shown_in_caret_notation(text: str, expected: str) -> None:
    assert terminal_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("line 1\nline 2\n", "line 1\nline 2\n"),
        ("col\tcol", "col\tcol"),
        ("epoch 1: 50%\repoch 1: 100%\n", "epoch 1: 50%^Mepoch 1: 100%\n"),
        ("\x1b[31mred\x1b[0m\n", "^[[31mred^[[0m\n"),
        ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "^[]8;;http://evil^[\\link^[]8;;^[\\"),
        ("bell\x07", "bell^G"),
    ],
)
def test_keep_layout_keeps_newlines_and_tabs_only(text: str, expected: str) -> None:
    assert terminal_text(text, keep_layout=True) == expected


@pytest.mark.parametrize("code", [*range(0x20), *range(0x7F, 0xA0)])
def test_no_control_character_survives(code: int) -> None:
    for keep in (False, True):
        out = terminal_text(f"a{chr(code)}b", keep_layout=keep)
        allowed = {"\n", "\t"} if keep else set()
        assert all(c.isprintable() or c in allowed for c in out), (code, out)
