"""The generation backend of a suite run: which name a server is asked for, and what each backend promises."""

from pathlib import Path

from evalkit.config.specs import GenerationEndpointSpec, GenerationSpec, ModelSpec, SamplingSpec
from evalkit.generate.suite import PanelDecoder, endpoint_of, served_name

ENDPOINT = GenerationEndpointSpec(base_url="http://127.0.0.1:8000/v1", models={"dpo": "dpo-lora"}, concurrency=1)


def spec(**kwargs: object) -> GenerationSpec:
    return GenerationSpec.model_validate({"prompts": ["hi"], **kwargs})


def test_a_model_is_asked_for_by_its_mapped_name_else_by_its_path() -> None:
    generation = spec(backend="openai", endpoint=ENDPOINT)
    assert served_name(generation, ModelSpec(name="dpo", path="out/dpo")) == "dpo-lora"
    sweep = {"name": "dpo@100", "path": "out/dpo/checkpoint-100"}  # a checkpoint, as a sweep names it
    step = ModelSpec(name="dpo", path="out/dpo").model_copy(update=sweep)
    assert served_name(generation, step) == "out/dpo/checkpoint-100"  # another model: never the final one's name
    assert served_name(generation, ModelSpec(name="base", path="models/base")) == "models/base"


def test_the_endpoint_carries_every_setting_and_no_key() -> None:
    settings = {"api_key_env": "VLLM_API_KEY", "cache_dir": Path("c"), "retries": 5, "max_response_bytes": 4096}
    keyed = ENDPOINT.model_copy(update=settings | {"timeout_s": 7.5})
    endpoint = endpoint_of(keyed, "dpo-lora")
    assert (endpoint.timeout_s, endpoint.max_response_bytes) == (7.5, 4096)
    assert (endpoint.base_url, endpoint.model, endpoint.api_key_env) == (ENDPOINT.base_url, "dpo-lora", "VLLM_API_KEY")
    assert (endpoint.concurrency, endpoint.retries, endpoint.cache_dir, endpoint.honours_seed) == (
        1,
        5,
        Path("c"),
        False,
    )


def test_each_backend_states_what_a_fresh_run_repeats() -> None:
    in_process = PanelDecoder(spec()).backend()
    assert (in_process.backend, in_process.deterministic, in_process.reason) == ("hf", True, "in process, greedy")
    one_at_a_time = PanelDecoder(spec(backend="openai", endpoint=ENDPOINT)).backend()
    assert (one_at_a_time.backend, one_at_a_time.deterministic) == ("openai", True)
    assert one_at_a_time.reason == "greedy, one request at a time" and one_at_a_time.requests_sent == 0
    assert one_at_a_time.answers_redacted == 0  # an endpoint's answers were looked at for the key
    assert in_process.answers_redacted is None
    concurrent = ENDPOINT.model_copy(update={"concurrency": 8})
    batched = PanelDecoder(spec(backend="openai", endpoint=concurrent)).backend()
    assert not batched.deterministic and "batched together" in batched.reason
    sampled = PanelDecoder(spec(backend="openai", endpoint=ENDPOINT, sampling=SamplingSpec())).backend()
    assert not sampled.deterministic and sampled.reason.startswith("sampling on a server that does not apply")
