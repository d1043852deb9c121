"""Markdown that stays inert whatever a results file holds.

`report.md`, `summary.md` and `compare.md` are posted as PR comments and step summaries, often from
a fork's CI artifact, so every name, id, path and description in them is untrusted text. One rule
for all of it (`escape`), applied to every value a markdown template prints unless the value is
already `Markdown` (evalkit's own tables and lines, built from escaped parts):
- no HTML: `&`, `<`, `>` become entities;
- no table rows forged: `|` is escaped, every line break (CR, LF, U+0085, U+2028, U+2029) is a space;
- no links, images or reference definitions: `](`, `][` and `]:` lose their meaning; no code spans
  broken out of: backticks are escaped;
- no autolinks or mentions: a zero-width space goes after `@` and inside `scheme:`/`www.`, so
  `@org/team`, `user@host`, `https://…` and `www.…` are shown, not linked;
- no issue references: a zero-width space goes after `#` and `GH-` before a digit, so `#123`,
  `owner/repo#9` and `GH-77` are shown, not linked (GitHub would post a back-reference in that issue);
- no characters that are not text: control characters become U+FFFD, and bidirectional controls
  (U+202A-U+202E, U+2066-U+2069, and the marks U+200E, U+200F, U+061C), which reorder what a reader sees
  of the text around them, are dropped;
- no wall of text: each value is clipped to `VALUE_LIMIT` characters, saying how many more `report.html`
  holds (a PR comment takes 65,536 characters in all).
Text inside a code span cannot be backslash-escaped, so `code` fences it with more backticks than it
holds instead.
"""

from __future__ import annotations

import re

ZERO_WIDTH = "\u200b"
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u0085\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINK_SYNTAX = re.compile(r"\](?=[(\[:])")
# No word boundary before the scheme: GitHub links `_https://…` and `x_www.…` too, so every occurrence is broken.
_SCHEME = re.compile(r"(?i)(?:https?|ftps?|mailto|file|javascript|data)(?=:)|www(?=\.)")
_MENTION = re.compile(r"@(?=[\w.+-])")
_REFERENCE = re.compile(r"(?i)(?:#|\bgh-)(?=\d)")
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

VALUE_LIMIT = 1_000
"""Characters of one value (a name, a statement) markdown shows; the HTML report shows it whole."""


class Markdown(str):
    """Text that is already markdown, built by evalkit from escaped parts: printed as it is."""


def escape(text: object) -> Markdown:
    """`text` as inert markdown inline text (see the module docstring)."""
    if isinstance(text, Markdown):
        return text
    value = _plain(_clipped(str(text)))
    value = value.replace("\\", "\\\\").replace("`", "\\`").replace("|", "\\|")
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = _LINK_SYNTAX.sub("]\\\\", value)
    value = _SCHEME.sub(lambda m: m.group(0) + ZERO_WIDTH, value)
    value = _REFERENCE.sub(lambda m: m.group(0) + ZERO_WIDTH, value)
    return Markdown(_MENTION.sub("@" + ZERO_WIDTH, value))


def _clipped(text: str, limit: int = VALUE_LIMIT) -> str:
    """`text`, cut after `limit` characters with a note of how many more the HTML report shows."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… ({len(text) - limit:,} more characters: full text in report.html)"


def _plain(text: str) -> str:
    """One line of text only: line breaks a space, control characters U+FFFD, bidirectional controls dropped."""
    return _BIDI.sub("", _CONTROL.sub("\ufffd", _LINE_BREAKS.sub(" ", text)))


def code(text: object) -> Markdown:
    """`text` as an inline code span that nothing in it can end early (pipes escaped for tables)."""
    value = _plain(_clipped(str(text))).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {value} " if value.startswith("`") or value.endswith("`") or not value.strip() else value
    return Markdown(f"{fence}{padded}{fence}")
