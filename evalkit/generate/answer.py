"""What a server answered, checked before evalkit uses or keeps it, and the API key masked wherever it shows.

A server is not trusted: a chat completion is read into a `ChatResponse` only when its values can be used as
they are. A log-prob must be a finite number no greater than 0 (a log-prob of 1000 overflows `exp`), a token
text (a number would be read as a label), and a token count within [0, max_tokens] (a count of −7 or 1e30 is
not a count: it is dropped, and generation counts the tokens of the text itself). An answer that breaks the
first two is refused, never cached, and the run stops on one line saying what was wrong.

A server may also echo the API key it was sent, as it is or encoded (in a URL, base64, a JSON string). Every
form is masked in messages and in the answers themselves, before they reach the cache (`ResponseCache`: one
file per answer, which says whether the key was masked in it), results or reports.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.results.files import atomic_write_text

MASK = "***"
SECRET_LENGTH = 8
"""Keys shorter than this (`EMPTY`, the placeholder a local vLLM server is often given) are masked in messages only."""
LOGPROB_ROUNDING = 1e-4
"""A log-prob this far above 0 is a rounding error of a probability of 1 (read as 0); further is a broken server."""


@dataclass(frozen=True)
class ChatResponse:
    """What the server answered, reduced to what evalkit reads."""

    content: str
    finish_reason: str | None
    """`stop` (the model ended its turn), `length` (it hit `max_tokens`), or what the server says."""
    completion_tokens: int | None
    """The server's count of generated tokens (its EOS included), when it reports a count in [0, max_tokens]."""
    top_logprobs: list[dict[str, float]] | None
    """Per generated position, token text → log-prob of the most likely tokens (those that read the same text
    combined); None when not given."""


class Malformed(Exception):
    """The body is not a chat completion (another attempt may get one)."""


class Refused(Exception):
    """The body is a chat completion whose values cannot be used; the message says which and why."""


def read_answer(answer: Any, max_tokens: int) -> ChatResponse:
    """The fields evalkit reads, checked; `Malformed` when the body is not a chat completion, `Refused` when a
    value in it is out of its range."""
    try:
        choice = answer["choices"][0]
        content = choice["message"]["content"]
        usage = answer.get("usage") or {}
        tokens = usage.get("completion_tokens")
        positions = (choice.get("logprobs") or {}).get("content")
        finish = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise Malformed("no choices[0].message.content") from None
    if not isinstance(content, str):
        raise Malformed("message.content is not text")
    if finish is not None and not isinstance(finish, str):
        raise Refused(f"finish_reason {_show(finish)} is not text")
    if positions is not None and not isinstance(positions, list):
        raise Refused(f"logprobs.content {_show(positions)} is not a list")
    top = [_position(position, i) for i, position in enumerate(positions)] if positions else None
    return ChatResponse(content, finish, _count(tokens, max_tokens), top)


def _position(position: Any, index: int) -> dict[str, float]:
    entries = position.get("top_logprobs") if isinstance(position, dict) else None
    if not isinstance(entries, list):
        raise Refused(f"logprobs.content[{index}].top_logprobs is not a list")
    found: dict[str, float] = {}
    for entry in entries:
        token, logprob = (entry.get("token"), entry.get("logprob")) if isinstance(entry, dict) else (None, None)
        if not isinstance(token, str):
            raise Refused(f"a top log-prob token at position {index} is {_show(token)}, not text")
        if not isinstance(logprob, int | float) or not _is_logprob(logprob):
            raise Refused(f"the top log-prob of token {token!r} at position {index} is {_show(logprob)}; expected ≤ 0")
        value = min(float(logprob), 0.0)
        # Two tokens may read as the same text: SentencePiece's byte fallback `<0x41>` and `A`, or partial UTF-8
        # bytes, which vLLM shows as "". Their probabilities add up, as the model's mass on that text.
        found[token] = min(_log_add(found[token], value), 0.0) if token in found else value
    return found


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) without underflow (vLLM writes a log-prob of -inf as -9999)."""
    high, low = max(a, b), min(a, b)
    return high + math.log1p(math.exp(low - high))


def _is_logprob(value: float) -> bool:
    """A finite number no greater than 0 (within rounding); a bool is not a number here."""
    return not isinstance(value, bool) and math.isfinite(value) and value <= LOGPROB_ROUNDING


def _count(tokens: Any, max_tokens: int) -> int | None:
    """The server's token count when it can be one; otherwise None, and the text is counted instead."""
    if isinstance(tokens, bool) or not isinstance(tokens, int | float) or not math.isfinite(tokens):
        return None
    return int(tokens) if tokens == int(tokens) and 0 <= tokens <= max_tokens else None


def _show(value: Any) -> str:
    text = json.dumps(value)  # as the server sent it (a parsed JSON value: NaN reads NaN)
    return text if len(text) <= 40 else text[:39] + "…"


@dataclass(frozen=True)
class KeptAnswer:
    """A server's answer as kept: the body (the key masked in it) and whether anything was masked."""

    body: dict[str, Any]
    redacted: bool


class ResponseCache:
    """One JSON file per answered request, named by the SHA-256 of its canonical body."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def key(body: dict[str, Any]) -> str:
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, body: dict[str, Any]) -> KeptAnswer | None:
        path = self._path(self.key(body))
        try:
            entry = json.loads(path.read_text())
            if entry.get("request") != body:  # a hash collision reads as a miss
                return None
            return KeptAnswer(entry["response"], bool(entry.get("redacted", False)))
        except (OSError, ValueError, KeyError, AttributeError):  # absent, or damaged: asked again, and rewritten
            return None

    def put(self, body: dict[str, Any], answer: KeptAnswer) -> None:
        record = {"request": body, "response": answer.body, "redacted": answer.redacted}
        entry = json.dumps(record, ensure_ascii=False)
        atomic_write_text(self._path(self.key(body)), entry)  # a reader sees the whole answer or none


class KeyMask:
    """Masks one API key, and its URL-encoded, base64 and JSON-escaped forms, in text and in parsed JSON."""

    def __init__(self, key: str | None) -> None:
        self.forms = sorted(_forms(key), key=len, reverse=True) if key else []
        self._pattern = re.compile("|".join(map(re.escape, self.forms))) if self.forms else None
        self._in_answers = key is not None and len(key) >= SECRET_LENGTH

    def text(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def value(self, value: Any) -> tuple[Any, bool]:
        """`value` with every string in it masked (keys of objects too), and whether anything was. A key shorter
        than `SECRET_LENGTH` is left in answers: it is a placeholder, and masking it would change the text."""
        if not self._in_answers:
            return value, False
        if isinstance(value, str):
            masked = self.text(value)
            return masked, masked != value
        if isinstance(value, list):
            items = [self.value(item) for item in value]
            return [item for item, _ in items], any(found for _, found in items)
        if isinstance(value, dict):
            pairs = [(self.value(k), self.value(v)) for k, v in value.items()]
            return {k: v for (k, _), (v, _) in pairs}, any(a or b for (_, a), (_, b) in pairs)
        return value, False


def _forms(key: str) -> set[str]:
    raw = key.encode()
    quoted = {urllib.parse.quote(key, safe=""), urllib.parse.quote_plus(key, safe="")}
    quoted |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), q) for q in quoted}
    escaped = {json.dumps(key)[1:-1], json.dumps(key, ensure_ascii=False)[1:-1]}
    escaped |= {e.replace("/", "\\/") for e in escaped}
    return {key} | quoted | escaped | _base64_forms(raw)


def _base64_forms(raw: bytes) -> set[str]:
    """The key's base64 wherever it starts in the encoded bytes (`user:key` in a Basic header starts mid-group):
    for each of the three alignments, the characters that depend on the key's bytes alone."""
    forms = set()
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(bytes(offset) + raw).decode()
            start, end = math.ceil(offset * 8 / 6), (offset + len(raw)) * 8 // 6
            if end - start >= 8:  # a short core would mask innocent text
                forms.add(encoded[start:end])
    return forms
