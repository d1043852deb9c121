import contextlib
import copy
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, PreTrainedTokenizerFast

from evalkit.config.specs import GenerationSpec, PanelSource, SamplingSpec
from evalkit.data.pairs import PreferencePair
from evalkit.errors import EvalkitError
from evalkit.generate.decode import Sample, generate, text_stats
from evalkit.generate.drift import drift_estimate, per_token_kls
from evalkit.generate.panel import PanelPrompt, build_panel, render_prompt
from evalkit.judges.pointwise import load_callable_judge, reward_model, summarise
from evalkit.results.estimates import Statistics
from evalkit.world import judge
from evalkit.world.pairs import generate_pairs


def panel_of(n: int) -> list[PanelPrompt]:
    return [PanelPrompt(p.id, p.prompt, p.prompt[0]["content"]) for p in generate_pairs(n, seed=2)]  # type: ignore[index]


def test_prompts_render_with_the_chat_template_when_there_is_one(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    as_text = tiny_tokenizer.decode(render_prompt("What is 2 plus 3?", tiny_tokenizer))
    assert as_text == "<s><|user|>What is 2 plus 3?<|end|><|assistant|>"
    messages = [{"role": "user", "content": "Hi"}]
    assert tiny_tokenizer.decode(render_prompt(messages, tiny_tokenizer)) == "<s><|user|>Hi<|end|><|assistant|>"


def test_prompts_render_as_text_without_a_chat_template(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    plain = tiny_tokenizer.__class__(tokenizer_object=tiny_tokenizer.backend_tokenizer, eos_token="<|end|>")
    assert plain.decode(render_prompt("\n\nHuman: Hi\n\nAssistant:", plain)) == "<s>\n\nHuman: Hi\n\nAssistant:"
    assert plain.decode(render_prompt([{"role": "user", "content": "Hi"}], plain)) == "<s>Hi"


def test_panel_has_fixed_prompts_then_a_seeded_draw() -> None:
    pairs = [PreferencePair(f"d-{i}", f"q{i}", "a", "b") for i in range(10)]
    spec = GenerationSpec(prompts=["fixed"], from_dataset=PanelSource(dataset="d", n=3, seed=1))
    panel = build_panel(spec, {"d": pairs})
    assert panel[0].id == "prompt-0" and panel[0].text == "fixed" and len(panel) == 4
    assert panel == build_panel(spec, {"d": pairs})
    assert [p.id for p in panel[1:]] == sorted(p.id for p in panel[1:])  # kept in file order


def test_batched_greedy_equals_one_by_one(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    panel = panel_of(3)  # 9 prompts of different lengths: left padding in every batch
    one = generate(tiny_model, tiny_tokenizer, panel, "m", 8, 1, None)
    batched = generate(tiny_model, tiny_tokenizer, panel, "m", 8, 4, None)
    assert [s.token_ids for s in one] == [s.token_ids for s in batched]
    assert all(1 <= s.n_tokens <= 8 for s in one)


def test_a_model_whose_rotary_scaling_follows_the_longest_position_generates_each_prompt_alone(
    tiny_tokenizer: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`longrope` (Phi-3.x) picks its frequencies by the longest position in a batch: batched, a prompt's greedy
    answer could depend on its neighbours, so such a model decodes one prompt at a time, as it is scored."""
    torch.manual_seed(0)
    rope = {"rope_type": "longrope", "short_factor": [1.0] * 4, "long_factor": [1.0, 2.0, 4.0, 8.0]}
    config = LlamaConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=128,
        rope_parameters={"rope_theta": 10000.0, "original_max_position_embeddings": 32, **rope},
    )
    model = LlamaForCausalLM(config).eval()
    rows: list[int] = []
    decode = model.generate
    monkeypatch.setattr(
        model, "generate", lambda **options: rows.append(len(options["input_ids"])) or decode(**options)
    )
    panel = panel_of(2)
    assert len(generate(model, tiny_tokenizer, panel, "m", 4, 8, None)) == len(panel)
    assert rows == [1] * len(panel)


def test_seeded_samples_repeat_and_do_not_depend_on_the_panel_around_them(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    panel = panel_of(2)
    sampling = SamplingSpec(k=3, temperature=1.0, seed=5)
    first = generate(tiny_model, tiny_tokenizer, panel, "m", 6, 8, sampling)
    again = generate(tiny_model, tiny_tokenizer, panel, "m", 6, 2, sampling)
    assert [s.token_ids for s in first] == [s.token_ids for s in again]
    assert len(first) == 3 * len(panel) and [s.index for s in first[:3]] == [0, 1, 2]
    assert len({tuple(s.token_ids) for s in first}) > 1
    other_seed = generate(tiny_model, tiny_tokenizer, panel, "m", 6, 8, SamplingSpec(k=3, temperature=1.0, seed=6))
    assert [s.token_ids for s in other_seed] != [s.token_ids for s in first]


def test_text_statistics_by_hand() -> None:
    """Two completions (EOS = 9): [1 2 1 2 1 2 EOS] and [3 3] (cut at max_new_tokens).
    Bodies: 1 2 1 2 1 2 and 3 3: 8 tokens, 3 distinct → distinct-1 = 3/8; bigrams 12 21 12 21 12 and 33:
    3 distinct of 6 → 1/2. 4-grams of the first: 1212, 2121, 1212 (a repeat): 1 of 8 tokens."""
    samples = [
        Sample("p", "m", 0, "", 7, True, [1, 2, 1, 2, 1, 2, 9]),
        Sample("q", "m", 0, "", 2, False, [3, 3]),
    ]
    stats = text_stats(samples)
    assert (stats.mean_tokens, stats.eos_rate) == (4.5, 0.5)
    assert (stats.distinct_1, stats.distinct_2, stats.repetition_rate) == (3 / 8, 0.5, 1 / 8)


def test_win_rates_and_judge_means_by_hand() -> None:
    """Judge scores per prompt, base 1 0 0, aligned 1 1 0: one win, two ties → (1 + ½·2)/3 = 2/3,
    Wilson on the effective size: outcomes 1 ½ ½ have variance (1/9 + 2/36)/3 = 1/18 against the
    binomial 2/9, so n_eff = 3·(2/9)/(1/18) = 12: Wilson on 8 of 12 = [0.390622, 0.861880];
    the sign test of 1 win against 0 losses: p = 1. Δ = mean(0, 1, 0) = 1/3;
    means 1/3 and 2/3 with t intervals over prompts. The order of the model list changes nothing."""
    panel = [PanelPrompt(p, p, p) for p in ("a", "b", "c")]
    samples = [Sample(p, m, 0, "", 1, True, [1]) for m in ("base", "aligned") for p in ("a", "b", "c")]
    scores = {"j": [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]}
    stats = Statistics()
    summary = summarise(panel, samples, scores, ["base", "aligned"], "base", stats)
    judges, wins = summary.judges, summary.win_rates
    (win,) = wins
    assert (win.model, win.baseline, win.wins, win.ties, win.losses) == ("aligned", "base", 1, 2, 0)
    assert win.win_rate == pytest.approx(2 / 3) and win.score_delta == pytest.approx(1 / 3)
    assert (win.ci_low, win.ci_high) == (pytest.approx(0.390622, abs=1e-6), pytest.approx(0.861880, abs=1e-6))
    assert win.sign_test_p == 1.0
    assert {j.model: j.mean for j in judges} == {"base": pytest.approx(1 / 3), "aligned": pytest.approx(2 / 3)}
    assert summarise(panel, samples, scores, ["aligned", "base"], "base", stats).win_rates == wins
    assert summarise(panel, samples, scores, ["base", "aligned"], None, stats).win_rates == []


def test_ten_wins_of_ten_have_a_wilson_interval() -> None:
    """10 of 10: Wilson [10/(10 + z²), 1] = [0.722467, 1] (a bootstrap of ten 1s had none); sign test 2/2¹⁰."""
    panel = [PanelPrompt(str(i), "q", "q") for i in range(10)]
    samples = [Sample(p.id, m, 0, "", 1, True, [1]) for m in ("base", "aligned") for p in panel]
    (win,) = summarise(
        panel, samples, {"j": [0.0] * 10 + [1.0] * 10}, ["base", "aligned"], "base", Statistics()
    ).win_rates
    assert (win.win_rate, win.ci_high) == (1.0, 1.0)
    assert win.ci_low == pytest.approx(10 / (10 + 1.959963984540054**2))
    assert win.sign_test_p == pytest.approx(2 / 2**10)


def test_win_rates_match_prompts_by_id_when_a_model_lacks_one() -> None:
    """The aligned model has no sample for prompt b: the win rate covers a and c only, matched by id."""
    panel = [PanelPrompt(p, p, p) for p in ("a", "b", "c")]
    samples = [Sample(p, "base", 0, "", 1, True, [1]) for p in ("a", "b", "c")]
    samples += [Sample(p, "aligned", 0, "", 1, True, [1]) for p in ("c", "a")]
    scores = {"j": [0.0, 1.0, 1.0, 1.0, 1.0]}  # base a 0, b 1, c 1; aligned c 1, a 1
    (win,) = summarise(panel, samples, scores, ["base", "aligned"], "base", Statistics()).win_rates
    assert (win.n, win.wins, win.ties, win.losses) == (2, 1, 1, 0)


def test_drift_averages_per_prompt_first_and_states_the_truncation() -> None:
    """Prompt a: per-token KL sums 1 and 3 (mean 2); prompt b: 4 → (2 + 4)/2 = 3 over 2 prompts;
    t interval 3 ± 12.706205·1 clipped below at 0. One of the three samples hit max_new_tokens."""
    samples = [Sample("a", "m", 0, "", 1, True, [1]), Sample("a", "m", 1, "", 1, False, [1])]
    samples.append(Sample("b", "m", 0, "", 1, True, [1]))
    drift = drift_estimate("m", "ref", samples, [1.0, 3.0, 4.0], 2, 16, Statistics())
    assert (drift.kl, drift.n, drift.samples_per_prompt, drift.estimator) == (3.0, 2, 2, "per_token")
    assert (drift.ci_low, drift.ci_high) == (0.0, pytest.approx(3 + 12.706205, abs=1e-5))
    assert (drift.max_new_tokens, drift.truncated) == (16, pytest.approx(1 / 3))


def test_per_token_kl_is_the_full_distribution_kl_along_the_sample(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    """Against a brute-force sum over positions of Σ_v p(v)(log p(v) − log q(v)), batched or not; zero
    against itself; never negative."""
    other = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    panel = panel_of(2)[:4]
    sampling = SamplingSpec(k=2, temperature=1.0, top_p=1.0, seed=3)
    samples = generate(tiny_model, tiny_tokenizer, panel, "m", 6, 1, sampling, own_distribution=True)
    kls = per_token_kls(tiny_model, lambda: contextlib.nullcontext(other), tiny_tokenizer, panel, samples, 3)
    for sample, kl in zip(samples, kls, strict=True):
        prompt = render_prompt(next(p for p in panel if p.id == sample.prompt_id).prompt, tiny_tokenizer)
        ids = torch.tensor([prompt + sample.token_ids])
        with torch.no_grad():
            p = torch.log_softmax(tiny_model(ids).logits[0].double(), -1)
            q = torch.log_softmax(other(ids).logits[0].double(), -1)
        positions = range(len(prompt) - 1, ids.shape[1] - 1)
        expected = sum(float((p[t].exp() * (p[t] - q[t])).sum()) for t in positions)
        assert kl == pytest.approx(expected, rel=1e-4, abs=1e-6)
        assert kl >= 0
    same = per_token_kls(tiny_model, lambda: contextlib.nullcontext(tiny_model), tiny_tokenizer, panel, samples, 4)
    assert max(same) == pytest.approx(0.0, abs=1e-6)


def test_drift_samples_ignore_the_checkpoints_sampling_filters(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    """A generation_config with a repetition penalty, an n-gram ban, a minimum length and top-k would
    draw from another distribution; drift samples are the same as from a model without them."""
    polluted = copy.deepcopy(tiny_model)
    config = polluted.generation_config
    config.repetition_penalty, config.no_repeat_ngram_size, config.min_new_tokens = 5.0, 1, 6
    config.top_k, config.typical_p = 3, 0.5
    panel = panel_of(2)[:3]
    sampling = SamplingSpec(k=3, temperature=1.0, top_p=1.0, seed=1)
    clean = generate(tiny_model, tiny_tokenizer, panel, "m", 8, 1, sampling, own_distribution=True)
    drawn = generate(polluted, tiny_tokenizer, panel, "m", 8, 1, sampling, own_distribution=True)
    assert [s.token_ids for s in drawn] == [s.token_ids for s in clean]
    filtered = generate(polluted, tiny_tokenizer, panel, "m", 8, 1, sampling)  # the user's own sampling
    assert [s.token_ids for s in filtered] != [s.token_ids for s in clean]


def test_callable_judges_load_by_reference() -> None:
    score = load_callable_judge("evalkit.world.judge:score")
    assert score("What is 3 plus 4?", "3 + 4 = 7.") == 1.0
    for bad, message in [
        ("evalkit.world.judge", "expected 'module:function'"),
        ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
        ("evalkit.world.judge:nothing", "has no callable 'nothing'"),
    ]:
        with pytest.raises(EvalkitError, match=message):
            load_callable_judge(bad)


@pytest.mark.parametrize(
    ("prompt", "completion", "expected"),
    [
        ("What is 3 plus 4?", "3 + 4 = 7.", 1.0),
        ("Compute 3 + 4.", "3 + 4 = 8.", 0.0),
        ("Ada asks: How do I make tea?", "Sure, steep it.", 1.0),
        ("Ada asks: How do I make tea?", "No, ask someone else about it.", 0.0),
        ("Ben asks: Answer in capital letters. What color is grass?", "GRASS IS GREEN.", 1.0),
        ("Ben asks: Use lower case only. What color is grass?", "GRASS IS GREEN.", 0.0),
        ("Ben asks: What color is grass? Reply using only small letters.", "grass is green.", 1.0),
        ("Something else entirely", "whatever", 0.0),
    ],
)
def test_the_tiny_world_judge_knows_the_right_answers(prompt: str, completion: str, expected: float) -> None:
    assert judge.score(prompt, completion) == expected


def test_a_reward_model_judges_prompt_and_completion(tmp_path: Path, tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_labels=1,
        pad_token_id=tiny_tokenizer.pad_token_id,
    )
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    tiny_tokenizer.save_pretrained(tmp_path / "rm")
    with reward_model(str(tmp_path / "rm"), "generation.judges.rm") as score:
        first, second = score("What is 1 plus 1?", "1 + 1 = 2."), score("What is 1 plus 1?", "1 + 1 = 5.")
        assert isinstance(first, float) and first != second
        assert score("What is 1 plus 1?", "1 + 1 = 2.") == first
    # It reads the exchange as a chat, rendered with its template: a user turn, then an assistant turn.
    exchange = "<s><|user|>What is 1 plus 1?<|end|><|assistant|>1 + 1 = 2.<|end|>"
    ids = torch.tensor([tiny_tokenizer(exchange, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        assert first == float(
            LlamaForSequenceClassification.from_pretrained(tmp_path / "rm")(input_ids=ids).logits[0, 0]
        )
    missing = reward_model(str(tmp_path / "missing"), "generation.judges.rm")
    with pytest.raises(EvalkitError, match=r"generation\.judges\.rm: cannot load a reward model"), missing:
        pass
