"""User-controlled text inside generated Markdown, rendered as text and nothing else.

Commands, options, store paths, dataset and model names and report titles come from the user or
from files in a store; inside the leaderboard's PROVENANCE.md and the report they must not turn
into links, images, HTML or break out of a code span or a table cell. Markdown that the harness
writes itself is wrapped in :class:`Md` so that table helpers know not to escape it again. Every
helper also redacts secrets (see :mod:`synbench.redaction`).
"""

from __future__ import annotations

import re

from .redaction import redact


class Md(str):
    """Markdown the harness wrote (already safe); plain ``str`` values are escaped as text."""


# inline constructs that could open a link, an image, raw HTML, an entity, a code span or a cell
# (`_` and `~` are left alone: at worst emphasis, and names like `loewe_gt30` stay readable)
_SPECIAL = re.compile(r"([\\`*\[\]<>&|])")


def _one_line(text: str) -> str:
    return re.sub(r"[\r\n\t\f\v]+", " ", text)


def md_text(value) -> Md:
    """``value`` as literal Markdown text (one line, inline syntax backslash-escaped)."""
    if isinstance(value, Md):
        return value
    return Md(_SPECIAL.sub(r"\\\1", _one_line(redact(str(value)))))


def md_code(value) -> Md:
    """``value`` as an inline code span that no backtick inside it can close early."""
    text = _one_line(redact(str(value)))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" ") and text.strip()) else ""
    return Md(f"{fence}{pad}{text}{pad}{fence}" if text else "` `")


__all__ = ["Md", "md_text", "md_code"]
