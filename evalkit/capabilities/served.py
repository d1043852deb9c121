"""Capability tasks scored by a server: lm-eval's `local-completions` model against `/v1/completions`.

A large checkpoint already served by vLLM need not be loaded a second time to measure its alignment tax. lm-eval
tokenizes each document with the model's own tokenizer (the one evalkit loaded, handed over through a temporary
directory: lm-eval's API models load theirs by path), sends the token ids with `echo` and `logprobs`, and sums the
continuation's log-probs from the prompt log-probs the server echoes. The server must return those: vLLM does;
`transformers serve` and most hosted APIs do not, and such an answer stops the run in one line.

Every request's failures are lm-eval's to retry (`retries` further attempts, backoff from 1 s up to 10 s); what
outlasts them is one `EvalkitError` naming the server and the model, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx2

from evalkit.config.specs import CapabilitiesEndpointSpec
from evalkit.errors import EvalkitError
from evalkit.generate.answer import KeyMask
from evalkit.generate.endpoint import read_api_key

if TYPE_CHECKING:
    from evalkit.checkpoints import LoadedModel, ServedCheckpoint

    Checkpoint = LoadedModel | ServedCheckpoint


def served_name(endpoint: CapabilitiesEndpointSpec, loaded: Checkpoint) -> str:
    """The name the server knows the model by: the suite's mapping, else its path (`vllm serve <path>`'s default)."""
    return endpoint.models.get(loaded.spec.name, loaded.spec.path)


def served_lm(endpoint: CapabilitiesEndpointSpec, loaded: Checkpoint, apply_chat_template: bool) -> Any:
    """lm-eval's `local-completions` model for `loaded` as the server serves it, with `loaded`'s tokenizer."""
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    key = read_api_key(endpoint.api_key_env)
    tokenizer = copy.deepcopy(loaded.tokenizer)
    if apply_chat_template:
        # lm-eval renders with the tokenizer's own template and no options: the pinned date travels inside the
        # template, options cannot
        if loaded.rendering.options:
            raise EvalkitError(
                f"capabilities.endpoint: model {loaded.spec.name!r} has chat_template_kwargs, which lm-eval's "
                "local-completions cannot pass to its chat template; run its tasks in process (no endpoint)"
            )
        if loaded.rendering.template is not None:
            tokenizer.chat_template = loaded.rendering.template
    with tempfile.TemporaryDirectory(prefix="evalkit-tokenizer-") as directory:
        tokenizer.save_pretrained(directory)
        return LocalCompletionsAPI(
            base_url=endpoint.base_url.rstrip("/") + "/completions",
            model=served_name(endpoint, loaded),
            tokenizer=directory,
            tokenizer_backend="huggingface",
            num_concurrent=endpoint.concurrency,
            max_retries=endpoint.retries + 1,  # lm-eval counts attempts
            timeout=math.ceil(endpoint.timeout_s),
            batch_size=1,  # one document per request; `concurrency` of them in flight, batched by the server
            add_bos_token=with_special_tokens(tokenizer, apply_chat_template),
            header={"Authorization": f"Bearer {key}"} if key else None,
        )


def with_special_tokens(tokenizer: Any, apply_chat_template: bool) -> bool:
    """Whether documents are encoded with the tokenizer's own special tokens (its BOS, where it adds one), as lm-eval's
    Hugging Face model encodes them in process: yes, unless the text already starts with the BOS (a chat template
    that writes it). lm-eval's API models leave special tokens out unless told (`add_bos_token`), which would score
    other token ids than the same task in process."""
    if not apply_chat_template or not tokenizer.bos_token:
        return True
    chat = [{"role": "user", "content": "x"}]
    rendered = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    return not str(rendered).startswith(tokenizer.bos_token)


@contextlib.contextmanager
def server_failures(endpoint: CapabilitiesEndpointSpec, loaded: Checkpoint) -> Iterator[None]:
    """What lm-eval raises once its retries are spent, as one line naming the server and the model."""
    import aiohttp
    import requests

    where = f"capabilities.endpoint {endpoint.base_url} (model {served_name(endpoint, loaded)!r})"
    try:
        yield
    except (aiohttp.ClientResponseError, requests.HTTPError) as failure:
        status = getattr(failure, "status", None) or getattr(getattr(failure, "response", None), "status_code", "")
        raise EvalkitError(f"{where}: HTTP {status} after {endpoint.retries + 1} attempts") from None
    except (aiohttp.ClientError, requests.RequestException, asyncio.TimeoutError) as failure:
        raise EvalkitError(
            f"{where}: no answer after {endpoint.retries + 1} attempts ({type(failure).__name__})"
        ) from None


def check_prompt_logprobs(endpoint: CapabilitiesEndpointSpec, loaded: Checkpoint, token_ids: list[int]) -> None:
    """One request of the kind lm-eval sends (`token_ids` as the prompt, echoed with log-probs), before any task
    runs: a wrong served name, an unreachable server or one that echoes no log-probs stops here, in one line."""
    name = served_name(endpoint, loaded)
    where = f"capabilities.endpoint {endpoint.base_url} (model {name!r})"
    key = read_api_key(endpoint.api_key_env)
    body = {"model": name, "prompt": token_ids, "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}
    try:
        reply = httpx2.post(
            endpoint.base_url.rstrip("/") + "/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=endpoint.timeout_s,
        )
    except httpx2.TransportError as failure:
        raise EvalkitError(f"{where}: cannot connect ({type(failure).__name__})") from None
    needs = "lm-eval's local-completions sends token ids and reads their log-probs echoed back (vLLM does that)"
    if reply.status_code == 404:  # vLLM: "The model `x` does not exist."
        raise EvalkitError(f"{where}: HTTP 404: {_line(reply.text, key)}")
    if reply.status_code != 200:
        raise EvalkitError(f"{where}: HTTP {reply.status_code}: {_line(reply.text, key)}; {needs}")
    try:
        logprobs = reply.json()["choices"][0]["logprobs"]["token_logprobs"]
    except (ValueError, KeyError, IndexError, TypeError):
        logprobs = None
    if not isinstance(logprobs, list) or len(logprobs) < len(token_ids):
        raise EvalkitError(f"{where}: the answer echoes no prompt log-probs; {needs}")


def _line(text: str, key: str | None) -> str:
    """A server's text as one short line, the key masked (a server may echo what it was sent)."""
    line = " ".join(KeyMask(key).text(text).split())
    return line if len(line) <= 160 else line[:159] + "…"
