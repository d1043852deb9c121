"""Chat templates rendered the same way every day: the model's template options and a pinned date.

Real chat templates take options (`enable_thinking` in Qwen3 and SmolLM3, ...) and some read the
clock: SmolLM3 writes `Today Date: <today>` into its system block through `strftime_now`. Rendered
naively, the same pair gives other tokens tomorrow, so scores move from one day to the next, a
baseline recorded yesterday is compared with pairs rendered differently today, and the reference
cache misses. evalkit renders every chat (scoring, training through TRL, generation prompts) with
one `Rendering`: the model's `chat_template_kwargs`, and, for a template that reads the clock, the
same template with `strftime_now` defined inside it as a macro that returns a pinned date.

Why a macro and not a patched clock: transformers exposes `strftime_now` as a jinja global and
turns any callable passed as a template variable into an inert placeholder, but a macro defined at
the top of a template takes precedence over a global of the same name. So the pinned template is a
plain string that any `apply_chat_template(chat_template=...)` call renders identically, TRL's
included, with nothing patched at run time.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import jinja2
from transformers import PreTrainedTokenizerBase

from evalkit.errors import EvalkitError, first_line

DEFAULT_DATE = datetime.date(2025, 1, 1)
"""The date a clock-reading template is rendered with when neither the suite nor evalkit's training names one."""

_CLOCK = "strftime_now"
_CLOCK_CALL = re.compile(r"strftime_now\(\s*(['\"])([^'\"]*)\1\s*\)")
_ANY_CLOCK_CALL = re.compile(r"strftime_now\s*\(")


@dataclass(frozen=True)
class Rendering:
    """How one model's chat template is rendered: its options and, when it reads the clock, the pinned date."""

    options: dict[str, Any] = field(default_factory=dict)
    """`chat_template_kwargs`, passed to every rendering (e.g. `{"enable_thinking": False}`)."""
    date: datetime.date | None = None
    """The date the template is rendered with; None when the template does not read the clock."""
    template: str | None = None
    """The template with its clock pinned to `date`; None: the tokenizer's own template, as it is."""

    def template_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `apply_chat_template` (TRL takes the same as a `chat_template_kwargs` column)."""
        return {**self.options, **({"chat_template": self.template} if self.template is not None else {})}

    @property
    def is_plain(self) -> bool:
        """No options and no pinned date: the tokenizer's template as it is (fingerprints and keys leave it out)."""
        return not self.options and self.date is None

    @property
    def identity(self) -> str:
        """What the rendering adds to the tokens' identity, for fingerprints and cache keys."""
        day = self.date.isoformat() if self.date is not None else None
        return json.dumps({"chat_template_kwargs": self.options, "date": day}, sort_keys=True, default=str)


PLAIN = Rendering()
"""The tokenizer's template with no options, for templates that do not read the clock."""


def reads_clock(template: str | None) -> bool:
    """Whether a chat template writes the current date (calls transformers' `strftime_now`)."""
    return template is not None and _CLOCK in template


def pin_date(template: str, day: datetime.date) -> str:
    """`template` with `strftime_now(format)` returning `day` in that format, whatever the clock says.

    Every call must pass a literal format (all templates seen so far do), so that each format's
    text is known before rendering; another kind of call cannot be pinned and is an error.
    """
    formats = sorted({match.group(2) for match in _CLOCK_CALL.finditer(template)})
    if len(_ANY_CLOCK_CALL.findall(template)) != len(_CLOCK_CALL.findall(template)):
        raise EvalkitError(
            "the chat template calls strftime_now with a format that is not a literal string; "
            "evalkit cannot pin its date: set the date through `chat_template_kwargs` if the template reads one"
        )
    branches = "".join(
        f"{{%- {'if' if i == 0 else 'elif'} format == {json.dumps(f)} -%}}{{{{ {json.dumps(day.strftime(f))} }}}}"
        for i, f in enumerate(formats)
    )
    return f"{{%- macro {_CLOCK}(format) -%}}{branches}{{%- endif -%}}{{%- endmacro -%}}" + template


def rendering_for(tokenizer: PreTrainedTokenizerBase, options: dict[str, Any], day: datetime.date) -> Rendering:
    """The rendering of `tokenizer`'s chat template with `options`, its clock (if it reads one) pinned to `day`."""
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    if not reads_clock(template):
        return Rendering(dict(options))
    assert template is not None
    return Rendering(dict(options), day, pin_date(template, day))


def chat_token_ids(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    rendering: Rendering = PLAIN,
    add_generation_prompt: bool = False,
) -> list[int]:
    """Token ids of `messages` rendered with the tokenizer's chat template (as TRL renders them).

    A template that refuses the conversation (Gemma's has no system role, Mistral's wants user and assistant
    turns to alternate) raises its own message as a one-line `EvalkitError`.
    """
    rendered = _render(tokenizer, messages, rendering, tokenize=True, add_generation_prompt=add_generation_prompt)
    return list(cast(dict[str, Any], rendered)["input_ids"])


def chat_text(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    rendering: Rendering = PLAIN,
    add_generation_prompt: bool = False,
    continues: bool = False,
) -> str:
    """`messages` rendered to text with the tokenizer's chat template, as TRL's `maybe_apply_chat_template` renders
    them for the trainers that tokenize text (CPO, ORPO); `continues`: leave the final message open."""
    rendered = _render(
        tokenizer,
        messages,
        rendering,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        continue_final_message=continues,
    )
    assert isinstance(rendered, str)
    return rendered


def _render(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    rendering: Rendering,
    tokenize: bool,
    **options: Any,
) -> Any:
    try:
        with time_limit(TEMPLATE_SECONDS, "the chat template"):
            if tokenize:
                return tokenizer.apply_chat_template(
                    messages, tokenize=True, return_dict=True, **options, **rendering.template_kwargs()
                )
            return tokenizer.apply_chat_template(messages, tokenize=False, **options, **rendering.template_kwargs())
    except (jinja2.exceptions.SecurityError, OverflowError) as exc:  # the sandbox's refusals (ranges too big, too)
        raise EvalkitError(f"the chat template did something its sandbox forbids: {first_line(exc)}") from None
    except jinja2.TemplateError as exc:
        roles = ", ".join(m.get("role", "?") for m in messages)
        raise EvalkitError(f"the chat template cannot render a conversation of roles [{roles}]: {exc}") from None


TEMPLATE_SECONDS = 10.0
"""Longest one conversation may take to render: real templates take milliseconds; a template with nested
loops over its input (hostile or broken) would otherwise run for as long as it likes."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Stop the block with a one-line `EvalkitError` after `seconds` (an interval timer: main thread, POSIX only;
    elsewhere the block runs unbounded)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise EvalkitError(f"{what} took more than {seconds:g} s to render one conversation; stopped")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
