"""Text that anyone with the token wrote (job names, errors, a training's output), made safe to
print on a terminal: a control character must show as itself, never move the cursor, retitle
the window, ring the bell or rewrite what was printed before it."""

from __future__ import annotations

import re

# C0 controls, DEL and the C1 controls (U+0080-U+009F: a terminal takes U+009B for CSI).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROLS_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def caret(char: str) -> str:
    """``cat -v`` notation: ESC is ``^[``, CR ``^M``, DEL ``^?``, C1 CSI (U+009B) ``M-^[``."""
    code = ord(char)
    if code == 0x7F:
        return "^?"
    if code >= 0x80:
        return "M-" + caret(chr(code - 0x80))
    return "^" + chr(code + 0x40)


def terminal_text(text: str, *, keep_layout: bool = False) -> str:
    """``text`` with every control character in ``cat -v`` notation. ``keep_layout`` keeps
    newlines and tabs (a log, a multi-line error); without it the text fits one table cell."""
    pattern = _CONTROLS_BUT_LAYOUT if keep_layout else _CONTROLS
    return pattern.sub(lambda match: caret(match.group()), text)
