"""Generation and judging through a real vLLM server (`vllm_world`, tests/integration/conftest.py): one server
for the session, serving a tiny world model and a LoRA adapter of it, both also held in this process.

What the engine must give back is what evalkit computes in process: the same greedy completions, for the base
and for the adapter by its served name.
"""

from pathlib import Path

import pytest

from evalkit.config.specs import GenerationSpec, PanelSource
from evalkit.generate.decode import Sample, generate
from evalkit.generate.endpoint import Endpoint, EndpointClient, generate_via_endpoint
from evalkit.generate.panel import PanelPrompt, build_panel
from evalkit.judges.pairwise import EndpointJudge, LocalJudge, PairToJudge, judge_pairs, summarise_pairwise
from evalkit.judges.prompt import load_template
from evalkit.world.pairs import generate_pairs
from tests.integration.vllm_server import VLLMWorld

MAX_NEW_TOKENS = 24


def world_panel(n: int) -> list[PanelPrompt]:
    """Held-out-style prompts of the tiny world, as a suite's `from_dataset` panel holds them."""
    spec = GenerationSpec(from_dataset=PanelSource(dataset="world", n=n, seed=3))
    return build_panel(spec, {"world": generate_pairs(4, seed=3)})


def served_completions(world: VLLMWorld, served_name: str, panel: list[PanelPrompt], cache: Path) -> list[Sample]:
    endpoint = Endpoint(world.server.base_url, served_name, concurrency=2, cache_dir=cache)
    with EndpointClient(endpoint) as client:
        samples = generate_via_endpoint(client, panel, "m", MAX_NEW_TOKENS, None, tokenizer=world.tokenizer)
        assert client.requests_sent == len(panel)  # no retry was needed
    return samples


def readings(samples: list[Sample]) -> list[tuple[str, str, int, bool]]:
    return [(s.prompt_id, s.completion, s.n_tokens, s.ended) for s in samples]


def test_greedy_completions_through_vllm_equal_those_in_process(vllm_world: VLLMWorld, tmp_path: Path) -> None:
    """Prompt by prompt: the same text, token count and end of turn. In process the panel decodes in
    left-padded batches of 4; vLLM renders each chat with the served tokenizer's template and decodes it."""
    panel = world_panel(8)
    local = generate(vllm_world.model, vllm_world.tokenizer, panel, "m", MAX_NEW_TOKENS, 4, None)
    served = served_completions(vllm_world, vllm_world.server.name, panel, tmp_path / "cache")
    assert readings(served) == readings(local)
    assert sum(bool(s.completion.strip()) for s in local) >= len(panel) // 2  # the model writes words
    assert any(s.ended for s in local)  # and ends turns, so `ended` is tested both ways


def test_a_lora_adapter_decodes_through_its_served_name(vllm_world: VLLMWorld, tmp_path: Path) -> None:
    """`--lora-modules adapter=DIR`: asking for the served name decodes base + adapter, exactly as the PEFT
    model in process does, and not as the base does (the adapter changes the completions)."""
    panel = world_panel(6)
    local = generate(vllm_world.adapted, vllm_world.tokenizer, panel, "m", MAX_NEW_TOKENS, 3, None)
    served = served_completions(vllm_world, vllm_world.adapter, panel, tmp_path / "cache")
    assert readings(served) == readings(local)
    base = generate(vllm_world.model, vllm_world.tokenizer, panel, "m", MAX_NEW_TOKENS, 3, None)
    assert [s.completion for s in local] != [s.completion for s in base]


def test_the_pairwise_judge_reads_its_verdicts_from_vllm_log_probs(vllm_world: VLLMWorld, tmp_path: Path) -> None:
    """vLLM returns the top log-probs of each generated token; the judge's verdict is P(A) / (P(A) + P(B)) at
    the first position, the same probability the model gives in process (`LocalJudge`, its full next-token
    distribution), for both orders of every pair."""
    template = load_template(vllm_world.judge_template)
    pairs = [
        PairToJudge(p.id, p.prompt[-1]["content"], p.chosen[-1]["content"], p.rejected[-1]["content"])
        for p in generate_pairs(2, seed=11)
    ]
    endpoint = Endpoint(vllm_world.server.base_url, vllm_world.server.name, concurrency=2, cache_dir=tmp_path / "c")
    with EndpointClient(endpoint) as client:
        served = judge_pairs(EndpointJudge("served", client), template, pairs)
        assert client.requests_sent == 2 * len(pairs)
    local = judge_pairs(LocalJudge("local", vllm_world.model, vllm_world.tokenizer), template, pairs)
    served_verdicts = [v for j in served for v in (j.candidate_first, j.reference_first)]
    local_verdicts = [v for j in local for v in (j.candidate_first, j.reference_first)]
    assert [v.source for v in served_verdicts] == ["logprobs"] * len(local_verdicts)
    assert [v.p_first for v in served_verdicts] == pytest.approx([v.p_first for v in local_verdicts], abs=1e-4)
    summary = summarise_pairwise("served", "chosen", "rejected", served, 0.95)
    assert (summary.n, summary.unparsed) == (len(pairs), 0)
