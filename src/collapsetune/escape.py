"""User text made safe for where collapsetune shows it. Folder names, config values, metric
names, rule descriptions and error messages come from users (and from files anyone could
have written), so none reaches a terminal or a Markdown page as it is.

- `terminal`: no control character (ESC sequences recolour, retitle or clear a terminal, a
  carriage return or newline forges a line) and no bidirectional override (which reorders
  what is read); each is shown as a Python-style escape, `\\x1b`.
- `markdown`: for MLflow's run descriptions (Markdown, rendered by showdown): HTML-escaped, so
  no tag or autolink; `[`, `]`, backticks, backslashes and `|` backslash-escaped, so no link,
  image, code span or table cell of the user's making; one line.
- `markdown_code`: a code span when the text can be one, else `markdown`.
- `quoted`: a user's text inside an error message: its repr, cut when long.

Example:
    >>> terminal("run\\x1b]0;pwned\\x07")
    'run\\\\x1b]0;pwned\\\\x07'
    >>> markdown("[click](javascript:alert(1)) <svg onload=alert(4)>")
    '\\\\[click\\\\](javascript:alert(1)) &lt;svg onload=alert(4)&gt;'
    >>> markdown_code("val/loss"), markdown_code("a`b")
    ('`val/loss`', 'a\\\\`b')
"""

from __future__ import annotations

import html
import re
from typing import Any

__all__ = ["markdown", "markdown_code", "quoted", "terminal"]

# C0 and C1 controls, DEL, line and paragraph separators, and the bidirectional controls
# (embeddings, overrides, isolates, marks) that reorder text on screen.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MARKDOWN = re.compile(r"([\\`\[\]|])")


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: Any) -> str:
    """`text` with every control or bidi character shown as an escape, never sent."""
    return _UNSAFE.sub(lambda m: _escaped(m.group()), str(text))


def markdown(text: Any) -> str:
    """`text` as literal Markdown inline text (a table cell included)."""
    return html.escape(_MARKDOWN.sub(r"\\\1", terminal(text)), quote=False)


def markdown_code(text: Any) -> str:
    """`text` as a code span (literal in every renderer), or as `markdown` when it holds a
    backtick or a `|` (a table would split a code span there)."""
    text = terminal(text)
    return f"`{text}`" if text and not re.search(r"[`|]", text) else markdown(text)


def quoted(text: str) -> str:
    """`text` as an error message names it: its repr, cut to 40 characters with its length
    past 60, so a pasted page does not bury the message."""
    return repr(text) if len(text) <= 60 else f"{text[:40]!r}... ({len(text)} characters)"
