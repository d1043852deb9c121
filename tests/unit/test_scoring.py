import math
from types import SimpleNamespace

import pytest
import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from evalkit.config.specs import ScoringSpec
from evalkit.data.pairs import PreferencePair, as_plain_text
from evalkit.scoring import logps
from evalkit.scoring.logps import attention_window, packed_pair_logps, prepare, whole_sequence_logps
from evalkit.scoring.score import (
    CompletionLogps,
    TokenizedPair,
    fits,
    pair_scores,
    probe_scoring,
    score_pairs,
    tokenize_pair,
)
from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs

PAD = 0


class BigramModel(torch.nn.Module):
    """A model whose next-token distribution depends only on the current token.

    Rows are P(next | current) over the vocabulary {0: pad, 1: a, 2: b, 3: c}, so every
    expected log-prob below can be worked out by hand.
    """

    TABLE = torch.tensor(
        [
            [0.25, 0.25, 0.25, 0.25],  # after pad (never scored)
            [0.125, 0.5, 0.25, 0.125],  # after a
            [0.125, 0.125, 0.5, 0.25],  # after b
            [0.0625, 0.0625, 0.125, 0.75],  # after c
        ]
    )
    device = torch.device("cpu")

    def forward(self, input_ids: torch.Tensor, **_: object) -> SimpleNamespace:
        return SimpleNamespace(logits=torch.log(self.TABLE[input_ids]))  # (B, T, V)


def pair(pair_id: str, prompt: list[int], chosen: list[int], rejected: list[int]) -> TokenizedPair:
    return TokenizedPair(pair_id, "all", prompt, chosen, rejected, prompt_is_prefix=True)


def test_summed_completion_logps_match_hand_computation() -> None:
    # prompt "a", chosen "b c", rejected "c c":
    #   log p(chosen)   = log P(b|a) + log P(c|b) = log 1/4 + log 1/4 = -2·log 4
    #   log p(rejected) = log P(c|a) + log P(c|c) = log 1/8 + log 3/4
    # The prompt token itself is never scored.
    (scores,) = score_pairs(
        BigramModel(), [pair("x", [1], [2, 3], [3, 3])], ScoringSpec(max_length=64, batch_size=4), PAD, "test"
    )
    assert scores.chosen == pytest.approx(-2 * math.log(4), abs=1e-6)
    assert scores.rejected == pytest.approx(math.log(1 / 8) + math.log(3 / 4), abs=1e-6)
    assert (scores.n_tokens_chosen, scores.n_tokens_rejected, scores.truncated) == (2, 2, False)


def test_padding_beside_a_longer_pair_changes_nothing() -> None:
    short = pair("s", [1], [2], [3])  # log P(b|a) = log 1/4 ; log P(c|a) = log 1/8
    long = pair("l", [1, 2, 3, 3], [1, 1, 1], [2, 2, 2, 2])
    alone = score_pairs(BigramModel(), [short], ScoringSpec(max_length=64, batch_size=1), PAD, "test")[0]
    batched = score_pairs(BigramModel(), [short, long], ScoringSpec(max_length=64, batch_size=2), PAD, "test")[0]
    assert alone == batched
    assert alone.chosen == pytest.approx(math.log(1 / 4)) and alone.rejected == pytest.approx(math.log(1 / 8))


def test_max_length_cuts_the_end_of_the_completion() -> None:
    # max_length 3 keeps "a b c" of "a b c c": the chosen keeps 2 of its 3 tokens.
    (scores,) = score_pairs(
        BigramModel(), [pair("t", [1], [2, 3, 3], [3])], ScoringSpec(max_length=3, batch_size=1), PAD, "test"
    )
    assert scores.chosen == pytest.approx(math.log(1 / 4) + math.log(1 / 4))
    assert scores.n_tokens_chosen == 2 and scores.n_tokens_rejected == 1 and scores.truncated


def test_a_prompt_that_fills_max_length_does_not_fit() -> None:
    assert fits(pair("p", [1, 2], [3], [3]), max_length=3)
    assert not fits(pair("p", [1, 2, 3], [3], [3]), max_length=3)


def test_conversational_pair_tokenizes_like_trl(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    p = generate_pairs(1, seed=0)[0]
    t = tokenize_pair(p, tiny_tokenizer)
    prompt = tiny_tokenizer.apply_chat_template(p.prompt, add_generation_prompt=True, tokenize=False)
    assert tiny_tokenizer.decode(t.prompt_ids) == prompt
    assert tiny_tokenizer.decode(t.chosen_ids) == p.chosen[0]["content"] + "<|end|>"  # type: ignore[index]
    assert tiny_tokenizer.decode(t.rejected_ids) == p.rejected[0]["content"] + "<|end|>"  # type: ignore[index]
    assert t.prompt_is_prefix


def test_standard_pair_gets_one_bos_and_one_eos(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    t = tokenize_pair(PreferencePair("s", "What is 2 plus 3?", " 2 + 3 = 5.", " 2 + 3 = 6.<|end|>"), tiny_tokenizer)
    assert t.prompt_ids[0] == tiny_tokenizer.bos_token_id
    assert t.prompt_ids.count(tiny_tokenizer.bos_token_id) == 1
    assert t.chosen_ids[-1] == t.rejected_ids[-1] == tiny_tokenizer.eos_token_id
    assert t.rejected_ids.count(tiny_tokenizer.eos_token_id) == 1  # already there: not appended twice


def test_real_model_scores_equal_unbatched_forward_and_do_not_depend_on_batch_size(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    pairs = [tokenize_pair(p, tiny_tokenizer) for p in generate_pairs(4, seed=5)]
    by_size = {
        size: score_pairs(
            tiny_model, pairs, ScoringSpec(max_length=1024, batch_size=size), tiny_tokenizer.pad_token_id, "t"
        )
        for size in (1, 3, 8)
    }
    for size in (3, 8):
        for a, b in zip(by_size[1], by_size[size], strict=True):
            assert a.chosen == pytest.approx(b.chosen, abs=1e-5)
            assert a.rejected == pytest.approx(b.rejected, abs=1e-5)
    # Against a plain forward of one sequence with no padding at all.
    first = pairs[0]
    ids = torch.tensor([first.prompt_ids + first.chosen_ids], device=tiny_model.device)
    with torch.no_grad():
        logp = torch.log_softmax(tiny_model(ids).logits[0, :-1].float(), -1)
    targets = ids[0, 1:]
    expected = logp[torch.arange(len(targets)), targets][len(first.prompt_ids) - 1 :].sum().item()
    assert by_size[1][0].chosen == pytest.approx(expected, abs=1e-5)


def test_pair_scores_carry_reference_logps() -> None:
    p = pair("x", [1], [2], [3])
    (policy,) = score_pairs(BigramModel(), [p], ScoringSpec(max_length=64, batch_size=1), PAD, "t")
    (row,) = pair_scores("m", [p], [policy], [policy])
    assert row.model == "m" and row.ref_logp_chosen == row.logp_chosen
    assert pair_scores("m", [p], [policy], None)[0].ref_logp_chosen is None


def test_left_and_right_padding_give_the_same_logps(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    pairs = [tokenize_pair(p, tiny_tokenizer) for p in generate_pairs(4, seed=6)]
    pad = tiny_tokenizer.pad_token_id
    right = score_pairs(
        tiny_model,
        pairs,
        ScoringSpec(max_length=1024, batch_size=8, share_prompt=False),
        pad,
        "t",
        padding_side="right",
    )
    left = score_pairs(
        tiny_model, pairs, ScoringSpec(max_length=1024, batch_size=8, share_prompt=False), pad, "t", padding_side="left"
    )
    shared = score_pairs(
        tiny_model, pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t"
    )  # prompts left-padded, completions right-padded
    assert_same(right, left)
    assert_same(right, shared)


def assert_same(expected: list[CompletionLogps], got: list[CompletionLogps], tolerance: float = 1e-5) -> None:
    """Per-pair log-probs equal within `tolerance`, token counts and truncation exactly, in the same order."""
    assert len(expected) == len(got)
    for a, b in zip(expected, got, strict=True):
        assert a.chosen == pytest.approx(b.chosen, abs=tolerance)
        assert a.rejected == pytest.approx(b.rejected, abs=tolerance)
        assert (a.n_tokens_chosen, a.n_tokens_rejected, a.truncated) == (
            b.n_tokens_chosen,
            b.n_tokens_rejected,
            b.truncated,
        )
        assert a.chosen_shared == pytest.approx(b.chosen_shared, abs=tolerance)
        assert a.rejected_shared == pytest.approx(b.rejected_shared, abs=tolerance)
        assert (a.prompt is None) == (b.prompt is None) and a.n_tokens_prompt == b.n_tokens_prompt
        assert a.prompt is None or a.prompt == pytest.approx(b.prompt, abs=tolerance)


class FullLogitsOnly(torch.nn.Module):
    """The model behind its forward alone: no decoder or head to reach, so scoring takes the plain path
    (full B×T×V logits, log-softmax over all of them): the reference the fast paths are held to."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.device = model.device

    def forward(self, **inputs: object) -> object:
        return self.inner(**inputs)


@pytest.fixture()
def world_pairs(tiny_tokenizer: PreTrainedTokenizerFast) -> list[TokenizedPair]:
    """27 pairs of the three subsets: prompts of 12-48 tokens, answers of 5-20."""
    return [tokenize_pair(p, tiny_tokenizer) for p in generate_pairs(9, seed=7)]


def test_the_tiny_llama_takes_the_fast_path(tiny_model: LlamaForCausalLM, world_pairs: list[TokenizedPair]) -> None:
    """So the equalities below compare the fast paths, not a silent fallback to the plain one."""
    with torch.inference_mode():
        runner = prepare(tiny_model, world_pairs[0].prompt_ids + world_pairs[0].chosen_ids, True, "float32")
    assert runner.decoder is not None and runner.share_prompt
    with torch.inference_mode():
        plain = prepare(FullLogitsOnly(tiny_model), world_pairs[0].prompt_ids, True, "float32")
    assert plain.decoder is None and not plain.share_prompt


def test_prompt_sharing_equals_whole_sequences(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, world_pairs: list[TokenizedPair]
) -> None:
    pad = tiny_tokenizer.pad_token_id
    whole = score_pairs(FullLogitsOnly(tiny_model), world_pairs, ScoringSpec(max_length=1024, batch_size=1), pad, "t")
    for size in (1, 4, 27):
        assert_same(
            whole,
            score_pairs(
                tiny_model, world_pairs, ScoringSpec(max_length=1024, batch_size=size, share_prompt=True), pad, "t"
            ),
        )
        assert_same(
            whole,
            score_pairs(
                tiny_model, world_pairs, ScoringSpec(max_length=1024, batch_size=size, share_prompt=False), pad, "t"
            ),
        )


def test_shared_tokens_and_prompt_logps_on_every_path(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, world_pairs: list[TokenizedPair]
) -> None:
    """LD-DPO's shared part (each answer's first min(T_c, T_r) tokens, after truncation) and ORPO's prompt log-prob
    (the prompt's tokens after its first) equal the sums of one whole forward pass per sequence, on every path."""
    pad, max_length = tiny_tokenizer.pad_token_id, 40
    fitting = [p for p in world_pairs if fits(p, max_length)]
    settings = ScoringSpec(max_length=max_length, batch_size=4)
    full = score_pairs(FullLogitsOnly(tiny_model), fitting, settings, pad, "t", with_prompt=True)
    for p, scored in zip(fitting, full, strict=True):
        room = max_length - len(p.prompt_ids)
        chosen, rejected = p.chosen_ids[:room], p.rejected_ids[:room]
        shared = min(len(chosen), len(rejected))
        with torch.inference_mode():
            ids = torch.tensor([p.prompt_ids + chosen])  # (1, T)
            picked = tiny_model(input_ids=ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
        start = len(p.prompt_ids) - 1  # picked[t] is token t + 1's
        assert scored.prompt == pytest.approx(float(picked[:start].double().sum()), abs=1e-5)
        assert scored.n_tokens_prompt == len(p.prompt_ids) - 1
        assert scored.chosen_shared == pytest.approx(float(picked[start : start + shared].double().sum()), abs=1e-5)
        assert scored.rejected_shared == pytest.approx(alone(tiny_model, p.prompt_ids, rejected[:shared]), abs=1e-5)
    assert any(len(p.chosen_ids) != len(p.rejected_ids) for p in fitting)
    for share in (True, False):
        for side in ("right", "left"):
            got = score_pairs(
                tiny_model,
                fitting,
                ScoringSpec(max_length=max_length, batch_size=4, share_prompt=share),
                pad,
                "t",
                padding_side=side,  # type: ignore[arg-type]
                with_prompt=True,
            )
            assert_same(full, got)
    unasked = score_pairs(tiny_model, fitting, settings, pad, "t")
    assert all(s.prompt is None and s.n_tokens_prompt is None for s in unasked)


def test_token_identical_answers_tie_exactly_on_every_path(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, world_pairs: list[TokenizedPair]
) -> None:
    """Packed after one prompt the same tokens sit at other positions and their float sums differ by ~1e-6:
    without care, an exact tie reads as a preference for one answer or the other."""
    pad = tiny_tokenizer.pad_token_id
    same = [pair(f"s{i}", p.prompt_ids, p.chosen_ids, list(p.chosen_ids)) for i, p in enumerate(world_pairs)]
    for share in (True, False):
        for size in (1, 5):
            scored = score_pairs(
                tiny_model, same, ScoringSpec(max_length=1024, batch_size=size, share_prompt=share), pad, "t"
            )
            assert all(s.chosen == s.rejected for s in scored), (share, size)
    different = score_pairs(
        tiny_model, world_pairs, ScoringSpec(max_length=1024, batch_size=4, share_prompt=True), pad, "t"
    )
    assert sum(s.chosen != s.rejected for s in different) == sum(p.chosen_ids != p.rejected_ids for p in world_pairs)


def test_token_budget_batches_equal_fixed_batches_in_input_order(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, world_pairs: list[TokenizedPair]
) -> None:
    pad = tiny_tokenizer.pad_token_id
    fixed = score_pairs(
        tiny_model, world_pairs, ScoringSpec(max_length=1024, batch_size=1, share_prompt=False), pad, "t"
    )
    for budget in (1, 100, 400, 100_000):  # 1: every pair alone; 100_000: all in one batch
        for share in (True, False):
            got = score_pairs(
                tiny_model,
                world_pairs,
                ScoringSpec(max_length=1024, batch_size=8, token_budget=budget, share_prompt=share),
                pad,
                "t",
            )
            assert_same(fixed, got)


def test_chunked_log_softmax_equals_full_logits(
    tiny_model: LlamaForCausalLM,
    tiny_tokenizer: PreTrainedTokenizerFast,
    world_pairs: list[TokenizedPair],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pad = tiny_tokenizer.pad_token_id
    full = score_pairs(FullLogitsOnly(tiny_model), world_pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t")
    monkeypatch.setattr(logps, "LOGITS_CHUNK", 3 * len(tiny_tokenizer))  # 3 positions per chunk: many chunks
    for share in (True, False):
        assert_same(
            full,
            score_pairs(
                tiny_model, world_pairs, ScoringSpec(max_length=1024, batch_size=8, share_prompt=share), pad, "t"
            ),
        )


def test_truncation_is_the_same_on_every_path(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, world_pairs: list[TokenizedPair]
) -> None:
    pad, max_length = tiny_tokenizer.pad_token_id, 40
    fitting = [p for p in world_pairs if fits(p, max_length)]
    full = score_pairs(FullLogitsOnly(tiny_model), fitting, ScoringSpec(max_length=max_length, batch_size=8), pad, "t")
    assert any(s.truncated for s in full) and not all(s.truncated for s in full)
    for share in (True, False):
        assert_same(
            full,
            score_pairs(
                tiny_model, fitting, ScoringSpec(max_length=max_length, batch_size=4, share_prompt=share), pad, "t"
            ),
        )


def test_a_pair_without_prompt_tokens_and_a_one_token_answer(tiny_model: LlamaForCausalLM) -> None:
    """An empty prompt has no last state to continue from: its batch scores whole sequences, like the plain path."""
    pairs = [pair("a", [], [5, 6, 7], [8]), pair("b", [3, 4], [9], [10, 11]), pair("c", [3], [5], [6])]
    full = score_pairs(FullLogitsOnly(tiny_model), pairs, ScoringSpec(max_length=64, batch_size=3), PAD, "t")
    assert full[0].n_tokens_chosen == 2  # the first token of a sequence is never predicted
    assert_same(full, score_pairs(tiny_model, pairs, ScoringSpec(max_length=64, batch_size=3), PAD, "t"))
    assert_same(full[1:], score_pairs(tiny_model, pairs[1:], ScoringSpec(max_length=64, batch_size=2), PAD, "t"))


class SoftCapped(torch.nn.Module):
    """A model whose logits are not its head applied to the last hidden state (like Gemma's soft-capping)."""

    def __init__(self, model: LlamaForCausalLM) -> None:
        super().__init__()
        self.inner = model
        self.device = model.device

    def get_decoder(self) -> torch.nn.Module:
        return self.inner.get_decoder()

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.inner.get_output_embeddings()

    def forward(self, **inputs: object) -> SimpleNamespace:
        return SimpleNamespace(logits=3.0 * torch.tanh(self.inner(**inputs).logits / 3.0))


def test_a_model_with_its_own_logit_transform_is_scored_by_its_own_forward(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, world_pairs: list[TokenizedPair]
) -> None:
    capped = SoftCapped(tiny_model)
    with torch.inference_mode():
        assert prepare(capped, world_pairs[0].prompt_ids, True, "float32").decoder is None
    pad = tiny_tokenizer.pad_token_id
    got = score_pairs(capped, world_pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t")
    assert_same(
        score_pairs(FullLogitsOnly(capped), world_pairs, ScoringSpec(max_length=1024, batch_size=1), pad, "t"), got
    )
    assert got[0].chosen != pytest.approx(
        score_pairs(tiny_model, world_pairs[:1], ScoringSpec(max_length=1024, batch_size=1), pad, "t")[0].chosen
    )


def test_bfloat16_only_when_asked_and_close_to_float32(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, world_pairs: list[TokenizedPair]
) -> None:
    pad = tiny_tokenizer.pad_token_id
    fp32 = score_pairs(tiny_model, world_pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t")
    bf16 = score_pairs(tiny_model, world_pairs, ScoringSpec(max_length=1024, batch_size=8, dtype="bfloat16"), pad, "t")
    assert next(tiny_model.parameters()).dtype == torch.float32  # autocast: the weights are left alone
    assert fp32 != bf16
    for a, b in zip(fp32, bf16, strict=True):
        assert b.chosen == pytest.approx(a.chosen, rel=2e-2) and b.rejected == pytest.approx(a.rejected, rel=2e-2)


def test_without_a_chat_template_messages_fall_back_to_plain_text(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    plain = tiny_tokenizer.__class__(
        tokenizer_object=tiny_tokenizer.backend_tokenizer, eos_token="<|end|>", bos_token="<s>"
    )
    assert plain.chat_template is None
    pair = PreferencePair(
        "u",
        [{"role": "user", "content": "Name a fruit."}],
        [{"role": "assistant", "content": " An apple."}],
        [{"role": "assistant", "content": " A car."}],
        prompt_text="Name a fruit.",
    )
    as_text = tokenize_pair(PreferencePair("u", "Name a fruit.", " An apple.", " A car."), plain)
    assert tokenize_pair(pair, plain) == as_text
    assert plain.decode(as_text.chosen_ids) == " An apple.<|end|>"
    # Without whitespace at the boundary, a newline keeps prompt and answer apart.
    glued = PreferencePair(
        "v", pair.prompt, [{"role": "assistant", "content": "Pear."}], pair.rejected, prompt_text="Fruit?"
    )
    assert as_plain_text(glued).chosen == "\nPear." and as_plain_text(glued).rejected == " A car."


def test_doubled_bos_is_flagged(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    assert not tokenize_pair(PreferencePair("a", "Hello", " there", " you"), tiny_tokenizer).doubled_bos
    # The text already starts with BOS and the tokenizer adds another.
    assert tokenize_pair(PreferencePair("b", "<s>Hello", " there", " you"), tiny_tokenizer).doubled_bos


class CausalMaskOnly(torch.nn.Module):
    """A model whose decoder ignores a custom 4D attention mask and attends causally over the whole row."""

    def __init__(self, model: LlamaForCausalLM) -> None:
        super().__init__()
        self.inner = model
        self.device = model.device

    def get_decoder(self) -> torch.nn.Module:
        inner = self.inner.get_decoder()

        class Decoder(torch.nn.Module):
            def forward(self, attention_mask: torch.Tensor, **inputs: object) -> object:
                if attention_mask.dim() == 4:
                    attention_mask = torch.ones(
                        attention_mask.shape[0],
                        attention_mask.shape[-1],
                        dtype=torch.long,
                        device=attention_mask.device,
                    )
                return inner(attention_mask=attention_mask, **inputs)

        return Decoder()

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.inner.get_output_embeddings()

    def forward(self, **inputs: object) -> object:
        return self.inner(**inputs)


def test_a_model_that_ignores_the_pair_mask_scores_whole_sequences(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, world_pairs: list[TokenizedPair]
) -> None:
    """Packed into one row, its rejected answer would see the chosen one: the probe notices and packs nothing."""
    model = CausalMaskOnly(tiny_model)
    with torch.inference_mode():
        runner = prepare(model, world_pairs[0].prompt_ids + world_pairs[0].chosen_ids, True, "float32")
    assert runner.decoder is not None and not runner.share_prompt  # still the selective log-softmax
    pad = tiny_tokenizer.pad_token_id
    assert_same(
        score_pairs(FullLogitsOnly(tiny_model), world_pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t"),
        score_pairs(model, world_pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t"),
    )


def test_eager_attention_packs_pairs_with_an_additive_mask(
    tiny_tokenizer: PreTrainedTokenizerFast, world_pairs: list[TokenizedPair]
) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval()
    model.set_attn_implementation("eager")
    with torch.inference_mode():
        runner = prepare(model, world_pairs[0].prompt_ids + world_pairs[0].chosen_ids, True, "float32")
    assert runner.share_prompt and runner.additive_mask
    pad = tiny_tokenizer.pad_token_id
    assert_same(
        score_pairs(FullLogitsOnly(model), world_pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t"),
        score_pairs(model, world_pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t"),
    )


def test_sliding_window_attention_shorter_than_a_pair_is_never_packed(
    tiny_tokenizer: PreTrainedTokenizerFast, world_pairs: list[TokenizedPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window of 8 tokens passes the probe (8 tokens), but packed into one row of a longer pair, a rejected
    token would lose sight of the prompt behind the chosen answer: such pairs are scored whole."""
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=8,
        pad_token_id=tiny_tokenizer.pad_token_id,
    )
    model = MistralForCausalLM(config).eval()
    pad = tiny_tokenizer.pad_token_id
    whole = score_pairs(FullLogitsOnly(model), world_pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t")
    widest = max(world_pairs, key=lambda p: len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids))
    longest = (widest.prompt_ids, widest.chosen_ids, widest.rejected_ids)
    sample = world_pairs[0].prompt_ids + world_pairs[0].chosen_ids
    with torch.inference_mode():
        assert not prepare(model, sample, True, "float32", longest).share_prompt
        short = (sample[:3], sample[3:6], sample[6:8])  # rows within the window may be packed
        packed = prepare(model, sample, True, "float32", short)
        assert packed.share_prompt
        forced = packed_pair_logps(
            packed, [p.prompt_ids for p in world_pairs], [(p.chosen_ids, p.rejected_ids) for p in world_pairs], pad
        )
    assert (
        max(abs(f.chosen - w.chosen) + abs(f.rejected - w.rejected) for f, w in zip(forced, whole, strict=True)) > 1e-3
    )
    assert_same(whole, score_pairs(model, world_pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t"))

    # A window the config does not name: the longest pair, packed and whole, tells.
    monkeypatch.setattr(logps, "attention_window", lambda config: None)
    with torch.inference_mode():
        assert not prepare(model, sample, True, "float32", longest).share_prompt
    assert_same(whole, score_pairs(model, world_pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t"))


@pytest.mark.parametrize(
    ("config", "window"),
    [
        (LlamaConfig(), None),
        (MistralConfig(sliding_window=4096), 4096),
        (MistralConfig(sliding_window=None), None),
        (Qwen2Config(use_sliding_window=False, sliding_window=4096), None),
        (Qwen2Config(use_sliding_window=True, sliding_window=512, max_window_layers=0, num_hidden_layers=2), 512),
        (SimpleNamespace(layer_types=["full_attention", "full_attention"], sliding_window=512), None),
        (SimpleNamespace(layer_types=["sliding_attention", "full_attention"], sliding_window=512), 512),
        (SimpleNamespace(layer_types=["chunked_attention", "full_attention"], attention_chunk_size=8192), 8192),
        (SimpleNamespace(layer_types=["linear_attention", "full_attention"]), 0),
    ],
)
def test_attention_window_is_read_from_the_config(config: object, window: int | None) -> None:
    assert attention_window(config) == window


def test_multimodal_and_gpt_neo_configs_name_their_windows() -> None:
    from transformers import Gemma3Config, GPTNeoConfig

    assert attention_window(Gemma3Config()) == Gemma3Config().text_config.sliding_window  # in its text config
    assert attention_window(GPTNeoConfig(window_size=256)) == 256  # local layers


def rope_scaled_model(tokenizer: PreTrainedTokenizerFast, rope: dict[str, object]) -> LlamaForCausalLM:
    """The tiny Llama with a rotary scaling that switches on past 32 positions (the world's pairs run 17-68)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=32 if rope["rope_type"] == "dynamic" else 128,
        rope_parameters={"rope_theta": 10000.0, **rope},
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


def alone(model: LlamaForCausalLM, prompt: list[int], completion: list[int]) -> float:
    """The sequence's completion log-prob from its own forward pass, after a short pass that resets a `dynamic`
    rotary cache: the number the model gives this sequence by itself."""
    with torch.inference_mode():
        model(input_ids=torch.tensor([prompt[:4]]))
        ids = torch.tensor([prompt + completion])  # (1, T)
        logps = model(input_ids=ids).logits[0, :-1].log_softmax(-1)  # (T-1, V)
        picked = logps.gather(-1, ids[0, 1:, None])[:, 0]  # (T-1,)
    return float(picked[len(prompt) - 1 :].double().sum())


LONG_FACTORS = {"short_factor": [1.0] * 4, "long_factor": [1.0, 2.0, 4.0, 8.0], "original_max_position_embeddings": 32}


@pytest.mark.parametrize(
    "rope",
    [{"rope_type": "dynamic", "factor": 16.0}, {"rope_type": "longrope", **LONG_FACTORS}],
    ids=["dynamic", "longrope"],
)
def test_rope_scaled_by_the_longest_position_scores_each_sequence_alone(
    rope: dict[str, object], tiny_tokenizer: PreTrainedTokenizerFast, world_pairs: list[TokenizedPair]
) -> None:
    """Phi-3.x and Phi-4-mini (`longrope`) and `dynamic` scaling change their rotary frequencies with the longest
    position in a forward pass: batched or packed, a sequence would get another sequence's numbers."""
    model = rope_scaled_model(tiny_tokenizer, rope)
    pad = tiny_tokenizer.pad_token_id
    expected = [
        (alone(model, p.prompt_ids, p.chosen_ids), alone(model, p.prompt_ids, p.rejected_ids)) for p in world_pairs
    ]
    short = min(world_pairs, key=lambda p: len(p.prompt_ids))
    long = max(world_pairs, key=lambda p: len(p.prompt_ids))
    with torch.inference_mode():  # the effect is real: batched beside a longer sequence, the numbers move
        batched = whole_sequence_logps(
            prepare(model, short.prompt_ids, False, "float32"),
            [short.prompt_ids + short.chosen_ids, long.prompt_ids + long.chosen_ids],
            [len(short.prompt_ids), len(long.prompt_ids)],
            1024,
            pad,
            "right",
        ).logps[0]
    # (a random tiny model attends almost uniformly, so positions move it little; still past the tolerance below)
    assert abs(batched - expected[world_pairs.index(short)][0]) > 2e-4
    runner = probe_scoring(model, world_pairs, 1024)
    assert runner.mode == "one sequence per pass" and f"`{rope['rope_type']}`" in runner.reason
    for size, share in ((1, True), (8, True), (27, False)):
        scored = score_pairs(
            model, world_pairs, ScoringSpec(max_length=1024, batch_size=size, share_prompt=share), pad, "t"
        )
        flat = [value for s in scored for value in (s.chosen, s.rejected)]
        assert flat == pytest.approx([value for both in expected for value in both], abs=1e-4)


def test_the_probes_say_which_way_they_chose_and_why(
    tiny_model: LlamaForCausalLM, world_pairs: list[TokenizedPair]
) -> None:
    assert probe_scoring(tiny_model, world_pairs, 1024).mode == "prompt-shared"
    off = probe_scoring(tiny_model, world_pairs, 1024, share_prompt=False)
    assert (off.mode, off.reason) == ("whole sequences", "scoring.share_prompt is off")
    plain = probe_scoring(FullLogitsOnly(tiny_model), world_pairs, 1024)
    assert (plain.mode, plain.reason) == ("whole sequences", "the model exposes no decoder and head to call")


def gemma2(tokenizer: PreTrainedTokenizerFast, cap: float | None) -> torch.nn.Module:
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        query_pre_attn_scalar=8,
        final_logit_softcapping=cap,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Gemma2ForCausalLM(config).eval()


def test_a_soft_capped_head_is_capped_after_the_selective_head(
    tiny_tokenizer: PreTrainedTokenizerFast, world_pairs: list[TokenizedPair], test_device: torch.device
) -> None:
    """Gemma 2's logits are 30·tanh(head/30). The cap is read from the config (a random model's logits are so small
    that the cap is the identity within the probe's tolerance) and applied after the head, so the 256k-vocabulary
    model keeps the fast paths. Its embedding (tied to its head) is scaled here until the cap bends the logits."""
    capped, uncapped = gemma2(tiny_tokenizer, 3.0).to(test_device), gemma2(tiny_tokenizer, None).to(test_device)
    with torch.no_grad():
        capped.get_output_embeddings().weight.mul_(40.0)
    uncapped.load_state_dict(capped.state_dict())
    sample = world_pairs[0].prompt_ids + world_pairs[0].chosen_ids
    with torch.inference_mode():
        runner = prepare(capped, sample, True, "float32")
        assert runner.decoder is not None and runner.soft_cap == 3.0
        assert prepare(uncapped, sample, True, "float32").soft_cap is None
        ids = torch.tensor([sample], device=test_device)
        assert capped(input_ids=ids).logits.abs().max() > 2.5  # the cap bends them: tanh(1) is 0.76
    pad = tiny_tokenizer.pad_token_id
    own = score_pairs(FullLogitsOnly(capped), world_pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t")
    for share in (True, False):
        settings = ScoringSpec(max_length=1024, batch_size=8, share_prompt=share)
        assert_same(own, score_pairs(capped, world_pairs, settings, pad, "t"))
    without_cap = score_pairs(uncapped, world_pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "t")
    assert max(abs(a.chosen - b.chosen) for a, b in zip(own, without_cap, strict=True)) > 1.0


def test_a_random_soft_capped_model_still_gets_its_cap(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    """At random initialisation the cap barely bends the logits: the probe alone would not see it, the config does."""
    model = gemma2(tiny_tokenizer, 30.0)
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    with torch.inference_mode():
        assert model(input_ids=ids).logits.abs().max() < 1.0
        assert prepare(model, ids[0].tolist(), True, "float32").soft_cap == 30.0


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"logit_scale": 0.0625}, "logit_scale"),
        ({"logits_scaling": 8.0}, "logits_scaling"),
        ({"logit_scale": 1.0}, None),
    ],
)
def test_a_config_that_scales_its_logits_runs_its_own_forward(fields: dict[str, float], expected: str | None) -> None:
    """Cohere multiplies its logits by `logit_scale`, Granite divides them by `logits_scaling`: the head alone is
    not the model's logits, so such a model is scored by its own forward."""
    assert logps.logit_scale(SimpleNamespace(**fields)) == expected
