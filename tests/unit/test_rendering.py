"""Template options and pinned dates: what `evalkit.data.rendering` renders, worked by hand."""

from __future__ import annotations

import datetime
import json

import pytest
from transformers import PreTrainedTokenizerFast
from transformers.utils.chat_template_utils import render_jinja_template

from evalkit.data.rendering import PLAIN, Rendering, pin_date, reads_clock, rendering_for
from evalkit.errors import EvalkitError

DAY = datetime.date(2025, 3, 7)
HI = [{"role": "user", "content": "Hi"}]


def render(template: str, **options: object) -> str:
    return render_jinja_template([HI], chat_template=template, **options)[0][0]


def test_a_pinned_template_writes_the_day_in_each_format_it_asks_for() -> None:
    template = "{{ strftime_now(\"%d %B %Y\") }}|{{ strftime_now('%Y-%m-%d') }}|{{ messages[0].content }}"
    assert reads_clock(template)
    assert render(pin_date(template, DAY)) == "07 March 2025|2025-03-07|Hi"


def test_the_pin_reaches_macros_and_keeps_is_defined_checks_true() -> None:
    """Llama-3.2 style: `strftime_now is defined` guards the call, inside a macro of the template's own."""
    template = (
        "{%- macro stamp() -%}{{ strftime_now('%d %b %Y') }}{%- endmacro -%}"
        "{%- if strftime_now is defined -%}{{ stamp() }}{%- else -%}none{%- endif -%}"
    )
    assert render(pin_date(template, DAY)) == "07 Mar 2025"


def test_a_format_that_is_not_a_literal_cannot_be_pinned() -> None:
    with pytest.raises(EvalkitError, match="not a literal string"):
        pin_date("{% set f = '%Y' %}{{ strftime_now(f) }}", DAY)


def test_templates_without_a_clock_are_left_alone(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    assert not reads_clock(tiny_tokenizer.chat_template) and not reads_clock(None)
    rendering = rendering_for(tiny_tokenizer, {"enable_thinking": False}, DAY)
    assert rendering == Rendering({"enable_thinking": False})
    assert rendering.template_kwargs() == {"enable_thinking": False}


def test_a_clock_template_is_rendered_with_its_pin_and_the_options(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tiny_tokenizer.backend_tokenizer,
        eos_token="<|end|>",
        chat_template="{{ strftime_now('%Y') }}{% if not think %} no{% endif %}",
    )
    rendering = rendering_for(tokenizer, {"think": False}, DAY)
    assert rendering.date == DAY and rendering.template is not None
    assert tokenizer.apply_chat_template(HI, tokenize=False, **rendering.template_kwargs()) == "2025 no"
    assert json.loads(rendering.identity) == {"chat_template_kwargs": {"think": False}, "date": "2025-03-07"}
    assert json.loads(PLAIN.identity) == {"chat_template_kwargs": {}, "date": None}


def test_a_template_that_runs_away_or_breaks_its_sandbox_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nested loops over the input would render for minutes; a sandbox violation used to be a traceback."""
    from evalkit.data import rendering
    from evalkit.data.rendering import chat_token_ids
    from evalkit.world.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["hello there", "how are you"], 300)
    monkeypatch.setattr(rendering, "TEMPLATE_SECONDS", 0.2)
    tokenizer.chat_template = "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}"
    with pytest.raises(EvalkitError, match=r"the chat template took more than 0.2 s to render one conversation"):
        chat_token_ids(tokenizer, [{"role": "user", "content": "hi"}])
    for forbidden in ("{{ messages.__class__.__mro__ }}", "{% for a in range(10**9) %}{% endfor %}"):
        tokenizer.chat_template = forbidden
        with pytest.raises(EvalkitError, match=r"the chat template did something its sandbox forbids"):
            chat_token_ids(tokenizer, [{"role": "user", "content": "hi"}])
