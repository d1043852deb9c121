"""Generation and judging through a real vLLM server (`vllm_world`, tests/integration/conftest.py): one server
for the session, serving a tiny world model and a LoRA adapter of it, both also held in this process.

What the engine must give back is what evalkit computes in process: the same greedy completions, for the base
and for the adapter by its served name.
"""

from pathlib import Path
from typing import Any

import pytest

from evalkit.capabilities.harness import CapabilityRunner
from evalkit.capabilities.served import check_prompt_logprobs
from evalkit.checkpoints import LoadedModel, load_model
from evalkit.config.specs import CapabilitiesEndpointSpec, CapabilitiesSpec, GenerationSpec, ModelSpec, PanelSource
from evalkit.errors import EvalkitError
from evalkit.generate.decode import Sample, generate
from evalkit.generate.endpoint import Endpoint, EndpointClient, generate_via_endpoint
from evalkit.generate.panel import PanelPrompt, build_panel
from evalkit.judges.pairwise import EndpointJudge, LocalJudge, PairToJudge, judge_pairs, summarise_pairwise
from evalkit.judges.prompt import load_template
from evalkit.world.pairs import generate_pairs
from evalkit.world.tasks import write_tasks
from tests.integration.vllm_server import VLLMServer, VLLMWorld

MAX_NEW_TOKENS = 24


def world_panel(n: int) -> list[PanelPrompt]:
    """Held-out-style prompts of the tiny world, as a suite's `from_dataset` panel holds them."""
    spec = GenerationSpec(from_dataset=PanelSource(dataset="world", n=n, seed=3))
    return build_panel(spec, {"world": generate_pairs(4, seed=3)})


def served_completions(
    server: VLLMServer, served_name: str, panel: list[PanelPrompt], tokenizer: Any, cache: Path
) -> list[Sample]:
    endpoint = Endpoint(server.base_url, served_name, concurrency=2, cache_dir=cache)
    with EndpointClient(endpoint) as client:
        samples = generate_via_endpoint(client, panel, "m", MAX_NEW_TOKENS, None, tokenizer=tokenizer)
        assert client.requests_sent == len(panel)  # no retry was needed
    return samples


def readings(samples: list[Sample]) -> list[tuple[str, str, int, bool]]:
    return [(s.prompt_id, s.completion, s.n_tokens, s.ended) for s in samples]


def test_greedy_completions_through_vllm_equal_those_in_process(vllm_world: VLLMWorld, tmp_path: Path) -> None:
    """Prompt by prompt: the same text, token count and end of turn. In process the panel decodes in
    left-padded batches of 4; vLLM renders each chat with the served tokenizer's template and decodes it."""
    panel = world_panel(8)
    local = generate(vllm_world.model, vllm_world.tokenizer, panel, "m", MAX_NEW_TOKENS, 4, None)
    served = served_completions(vllm_world.server, vllm_world.server.name, panel, vllm_world.tokenizer, tmp_path)
    assert readings(served) == readings(local)
    assert sum(bool(s.completion.strip()) for s in local) >= len(panel) // 2  # the model writes words
    assert any(s.ended for s in local)  # and ends turns, so `ended` is tested both ways


def test_a_lora_adapter_decodes_through_its_served_name(
    vllm_world: VLLMWorld, vllm_lora: VLLMServer, tmp_path: Path
) -> None:
    """`--lora-modules dpo=DIR`: asking for the served name decodes base + adapter, exactly as the PEFT
    model in process does, and not as the base does (the adapter changes the completions)."""
    panel = world_panel(6)
    local = generate(vllm_world.adapted, vllm_world.tokenizer, panel, "m", MAX_NEW_TOKENS, 3, None)
    served = served_completions(vllm_lora, "dpo", panel, vllm_world.tokenizer, tmp_path)
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


def capability_documents(
    loaded: LoadedModel, tasks: Path, endpoint: CapabilitiesEndpointSpec | None
) -> list[tuple[str, str, dict[str, float]]]:
    """Each document of 24 of `tinyworld_facts` with its values, scored in process or on `endpoint`."""
    spec = CapabilitiesSpec(tasks=["tinyworld_facts"], include_path=[tasks], limit=24, cache=None, endpoint=endpoint)
    runner = CapabilityRunner(spec)
    [run] = runner.run(loaded)
    if endpoint is not None:
        assert runner.served == {loaded.spec.name: endpoint.models.get(loaded.spec.name, loaded.spec.path)}
    return [(d.id, d.doc_hash, d.values) for d in run.documents]


def test_capability_tasks_score_the_same_documents_on_vllm_as_in_process(vllm_world: VLLMWorld, tmp_path: Path) -> None:
    """`capabilities.endpoint`: lm-eval's `local-completions` sends the token ids of each document (encoded as
    lm-eval encodes them in process, BOS included) to vLLM's `/v1/completions` and reads the echoed prompt
    log-probs; every document's accuracy is the one lm-eval's Hugging Face model gives in process, and the model
    is neither always right nor always wrong, so agreement is not a coincidence of a constant."""
    write_tasks(tmp_path / "tasks")
    loaded = load_model(ModelSpec(name="base", path=str(vllm_world.server.model_dir)))
    local = capability_documents(loaded, tmp_path / "tasks", None)
    server = CapabilitiesEndpointSpec(base_url=vllm_world.server.base_url, concurrency=4, retries=0)
    served = capability_documents(loaded, tmp_path / "tasks", server)
    assert len(served) == 24 and served == local
    assert 0 < sum(values["acc"] for _, _, values in local) < len(local)


def test_an_adapters_capability_tasks_score_on_its_lora_server(
    vllm_world: VLLMWorld, vllm_lora: VLLMServer, tmp_path: Path
) -> None:
    """The adapter by its served name, one request at a time (on CPU, vLLM's LoRA path returns prompt log-probs
    only for requests not batched together): the documents score as the PEFT model scores them in process."""
    write_tasks(tmp_path / "tasks")
    loaded = load_model(ModelSpec(name="dpo", path=str(vllm_world.adapter_dir)))
    local = capability_documents(loaded, tmp_path / "tasks", None)
    server = CapabilitiesEndpointSpec(base_url=vllm_lora.base_url, models={"dpo": "dpo"}, concurrency=1, retries=0)
    assert capability_documents(loaded, tmp_path / "tasks", server) == local


def test_a_capability_server_is_checked_before_any_task_runs(vllm_world: VLLMWorld, served_world: Any) -> None:
    """A served name the server does not know, and a server that cannot score token ids (`transformers serve`
    takes text prompts only), each stop the run in one line naming the server and the model."""
    loaded = load_model(ModelSpec(name="base", path=str(vllm_world.server.model_dir)))
    ids = list(loaded.tokenizer("Hello world")["input_ids"])
    unknown = CapabilitiesEndpointSpec(base_url=vllm_world.server.base_url, models={"base": "absent"})
    with pytest.raises(EvalkitError) as err:
        check_prompt_logprobs(unknown, loaded, ids)
    assert str(err.value).startswith(f"capabilities.endpoint {vllm_world.server.base_url} (model 'absent'): HTTP 404")
    no_echo = CapabilitiesEndpointSpec(base_url=served_world.base_url, models={"base": served_world.name})
    with pytest.raises(EvalkitError, match=r"HTTP 400: .*; lm-eval's local-completions sends token ids") as err:
        check_prompt_logprobs(no_echo, loaded, ids)
    assert "\n" not in str(err.value)
