"""One check for an option that takes one of a few names: the message names the option, the valid names and the
closest one (MONAI's ``look_up_option`` names neither the option nor the valid names)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

__all__ = ["check_choice"]


def check_choice(value: object, choices: Sequence[str], name: str, fix: str = "") -> str:
    """``value`` if it is one of ``choices`` (a member of a ``str`` Enum counts as its value), else a ``ValueError``:
    ``"<name> should be one of a, b, got 'x'. Did you mean 'a'?"`` followed by ``fix``."""
    if value in choices:
        return value
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{name} should be one of {', '.join(choices)}, got {value!r}.{hint}{fix}")
