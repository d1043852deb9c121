"""The generation backend and pairwise judges of a suite: one line per problem, naming the file and the key."""

from pathlib import Path

import pytest

from evalkit.config.suite import load_suite
from evalkit.errors import EvalkitError

SUITE = """
name: demo
output_dir: out
datasets: [{name: d, path: pairs.jsonl}]
models: [{name: base, path: models/base}, {name: tuned, path: models/tuned}]
reference: base
generation:
  prompts: [hi]
"""
ENDPOINT = "  backend: openai\n  endpoint: {base_url: 'http://127.0.0.1:8000/v1', concurrency: 8}\n"


def problem(tmp_path: Path, text: str) -> str:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(EvalkitError) as error:
        load_suite(path)
    message = str(error.value)
    prefix = f"{path}: "
    assert message.startswith(prefix) and "\n" not in message
    return message.removeprefix(prefix)


def test_an_endpoint_backend_loads_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE + ENDPOINT)
    generation = load_suite(path).generation
    assert generation is not None and generation.backend == "openai" and generation.endpoint is not None
    endpoint = generation.endpoint
    assert (endpoint.concurrency, endpoint.timeout_s, endpoint.retries) == (8, 120.0, 3)
    assert endpoint.cache_dir == Path(".evalkit/cache/endpoint") and not endpoint.honours_seed
    assert endpoint.models == {} and endpoint.api_key_env is None
    assert endpoint.max_response_bytes == 8 * 1024 * 1024


def test_the_backend_and_its_endpoint_go_together(tmp_path: Path) -> None:
    assert problem(tmp_path, SUITE + "  backend: openai\n") == (
        "generation.endpoint: `backend: openai` needs an `endpoint` (base_url, ...)"
    )
    assert problem(tmp_path, SUITE + "  endpoint: {base_url: 'http://h/v1'}\n") == (
        "generation.endpoint: set `backend: openai` to generate through it"
    )
    assert problem(tmp_path, SUITE + "  backend: vllm\n").startswith(
        "generation.backend: unknown value 'vllm'; expected one of ['hf'"
    )
    assert problem(tmp_path, SUITE + ENDPOINT.replace("concurrency", "concurency")) == (
        "generation.endpoint.concurency: unknown key (did you mean 'concurrency'?)"
    )
    served = SUITE + ENDPOINT.replace("concurrency: 8", "models: {tuned: dpo, tunde: x}")
    assert problem(tmp_path, served) == (
        "generation.endpoint.models.tunde: no model named 'tunde' (did you mean 'tuned'?); models are ['base', 'tuned']"
    )


def test_a_key_pasted_for_its_variable_name_is_never_echoed(tmp_path: Path) -> None:
    message = problem(tmp_path, SUITE + ENDPOINT.replace("concurrency: 8", "api_key_env: 'sk-secret-123'"))
    assert message == (
        "generation.endpoint.api_key_env: not an environment variable name; "
        "give the name of the variable holding the key"
    )
    assert "sk-secret" not in message


def test_pairwise_judges_are_checked_when_the_suite_loads(tmp_path: Path) -> None:
    judges = SUITE + "  judges:\n"
    both = judges + "    - {name: llm, model: j, endpoint: {base_url: 'http://h/v1', model: judge}}\n"
    assert problem(tmp_path, both) == (
        "generation.judges.llm: give exactly one of `callable`, `reward_model` (pointwise), `model` and `endpoint` "
        "(pairwise); got ['model', 'endpoint']"
    )
    assert problem(tmp_path, judges + "    - {name: rm, reward_model: r, template: t.txt}\n") == (
        "generation.judges.rm.template: only a pairwise judge reads it"
    )
    assert problem(tmp_path, judges + "    - {name: llm, endpoint: {base_url: 'http://h/v1'}}\n") == (
        "generation.judges.0.endpoint.model: required key is missing"
    )
    assert problem(tmp_path, judges + "    - {name: llm, model: j, baseline: bse}\n") == (
        "generation.judges.llm.baseline: no model named 'bse' (did you mean 'base'?); models are ['base', 'tuned']"
    )
    no_reference = (judges + "    - {name: llm, model: j}\n").replace("reference: base\n", "")
    assert problem(tmp_path, no_reference) == (
        "generation.judges.llm.baseline: a pairwise judge needs a model to judge against; name one or set `reference`"
    )
    template = tmp_path / "judge.txt"
    template.write_text("{instruction} {answer_a} {answer_two}")
    assert problem(tmp_path, judges + f"    - {{name: llm, model: j, template: '{template}'}}\n") == (
        f"generation.judges.llm.template: {template}: the judging template has fields "
        "['answer_a', 'answer_two', 'instruction']; expected exactly ['answer_a', 'answer_b', 'instruction']"
    )
    template.write_text("{instruction} {answer_a} {answer_b}")
    path = tmp_path / "suite.yaml"
    path.write_text(judges + f"    - {{name: llm, model: j, template: '{template}'}}\n")
    generation = load_suite(path).generation
    assert generation is not None and generation.judges[0].pairwise


@pytest.mark.parametrize("url", ["http://user:sk-key@h/v1", "https://h/v1?api-key=sk-key", "http://h/v1#frag"])
def test_a_base_url_that_would_write_a_secret_into_results_is_refused(tmp_path: Path, url: str) -> None:
    """base_url is recorded in results.json and the reports: a key in it would be published with them."""
    message = problem(tmp_path, SUITE + f"  backend: openai\n  endpoint: {{base_url: '{url}'}}\n")
    assert message.startswith("generation.endpoint.base_url: expected an http:// or https:// address with no user")
    assert "sk-key" not in message and "#frag" not in message
