"""The one jinja environment factory of every report template (`templates/`), markdown or HTML.

Markdown templates escape every printed string for markdown unless it is already `Markdown`
(`finalize`); HTML templates autoescape every string from the data. Both fail on an undefined name
where HTML is concerned (a typo in a template is an error, not an empty cell).
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

import jinja2

from evalkit.report.markdown import code, escape


def clip(text: str, limit: int = 4000) -> str:
    """`text`, cut after `limit` characters with a note saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more characters]"


def _finalize(value: Any) -> Any:
    return escape(value) if isinstance(value, str) else value


@cache
def environment(kind: Literal["markdown", "html"]) -> jinja2.Environment:
    """The environment of `kind`'s templates, made once per process."""
    loader = jinja2.PackageLoader("evalkit.report", "templates")
    if kind == "html":
        env = jinja2.Environment(
            loader=loader,
            autoescape=True,  # every string from datasets and models is data, never markup
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
        )
        env.filters["clip"] = clip
        return env
    env = jinja2.Environment(
        loader=loader,
        autoescape=False,  # HTML escaping would be wrong here: `finalize` escapes for markdown instead
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["code"] = code
    return env


def render(kind: Literal["markdown", "html"], template: str, **context: Any) -> str:
    """`template` of `templates/` rendered in `kind`'s environment."""
    return environment(kind).get_template(template).render(**context)
