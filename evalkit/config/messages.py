"""What the user reads about a suite: pydantic's errors as one line per problem, each naming the file and the
key path, with a suggestion for a near miss; and one-line notices.

Gate rules are a union tagged by `kind` (`evalkit.config.rules`), so pydantic puts the tag in an error's
location (`gate.rules.0.absolute.margin`) and speaks of missing or extra fields where the user wrote a rule of
one kind with another kind's keys. Those become the key path the user wrote and what the kind needs or does
not use: `gate.rules.0: kind 'absolute' needs `metric``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import BaseModel, ValidationError


def notice(message: str) -> None:
    """A one-line notice about the suite, on the terminal."""
    from evalkit.console import console

    console.print(f"[yellow]notice:[/yellow] {message}", soft_wrap=True)


def suggestion(name: str, known: list[str]) -> str:
    """' (did you mean ...?)' for a near miss: a typo, or a key with an extra prefix or suffix
    (`lora_alpha` for `alpha`, `rank` for `r`); empty when nothing is close."""
    close = difflib.get_close_matches(name, known, n=1)
    if not close:
        affixed = [k for k in known if name.startswith(k) or name.endswith(k) or k.startswith(name)]
        close = sorted(affixed, key=len, reverse=True)[:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def every_problem(
    source: str,
    error: ValidationError,
    root: type[BaseModel],
    given: Any = None,
    indexed: Sequence[str] = (),
    single: Sequence[str] = (),
) -> str:
    """Every problem pydantic found validating `given` as a `root`, one line each, each naming the file and the
    key. `given` (the mapping validated) lets a message about a rule name the rule. `indexed`: top-level lists whose
    items' validators name their keys without the item's index (`train.heldout`), which the error's location
    adds; `single`: those of them the user wrote as one item (`train: {...}`), whose index is no key of theirs."""
    lines = [
        line for problem in error.errors() for line in _describe(problem, root, given, indexed, single).splitlines()
    ]
    return "\n".join(f"{source}: {line}" for line in dict.fromkeys(lines))


@dataclass(frozen=True)
class _Tagged:
    """A union of sections told apart by the value of one key (`kind`)."""

    key: str
    members: dict[str, type[BaseModel]]


@dataclass(frozen=True)
class _Place:
    """Where an error's location points, once walked through the schema."""

    keys: tuple[str | int, ...]
    """The key path as the user wrote it: a union's tag is no key of theirs."""
    annotation: Any
    """The type expected there; None past the end of the schema."""
    tag: str | None = None
    """When the place is inside one member of a tagged union: that member's tag."""
    union: _Tagged | None = None
    """...and the union it is a member of."""

    single: bool = False
    """The place is in a one-item list the user wrote as that item: its index is no key of theirs."""

    @property
    def path(self) -> str:
        keys = self.keys[:1] + self.keys[2:] if self.single else self.keys
        return ".".join(str(key) for key in keys) or "(top level)"

    @property
    def spec(self) -> type[BaseModel] | None:
        return _model_in(self.annotation)


def _describe(error: Any, root: type[BaseModel], given: Any, indexed: Sequence[str], single: Sequence[str]) -> str:
    loc = tuple(error["loc"])
    alone = len(loc) >= 2 and loc[0] in single and loc[1] == 0
    place = dataclasses.replace(_walk(root, loc), single=alone)
    kind = error["type"]
    if kind in ("extra_forbidden", "missing") and loc:
        parent, key = dataclasses.replace(_walk(root, loc[:-1]), single=alone), str(loc[-1])
        if parent.union is not None and parent.tag is not None:
            rule = parent.union.key == "kind"  # the gate's rules; an objective's `name` is its tag, not a name
            named = _named(given, parent.keys, error.get("input") if kind == "missing" else None) if rule else ""
            if kind == "missing":
                return f"{parent.path}: {named}{parent.union.key} {parent.tag!r} needs `{key}`"
            if any(key in member.model_fields for member in parent.union.members.values()):
                return f"{parent.path}: {named}`{key}` is not used by {parent.union.key} {parent.tag!r}"
        if kind == "extra_forbidden":
            known = list(parent.spec.model_fields) if parent.spec is not None else []
            return f"{place.path}: unknown key{suggestion(key, known)}"
        return f"{place.path}: required key is missing"
    tagged = _tagged(place.annotation)
    if kind == "union_tag_not_found" and tagged is not None:
        return f"{place.path}.{tagged.key}: required key is missing"
    if kind == "union_tag_invalid" and tagged is not None:
        tag, tags = str(error.get("ctx", {}).get("tag")), list(tagged.members)
        hint = suggestion(tag, tags)
        return f"{place.path}.{tagged.key}: unknown {tagged.key} {tag!r}{hint}; {tagged.key}s are {tags}"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "name":
        return (
            f"{place.path}: {error.get('input')!r} is not a plain name; expected letters, digits, '.', '_', '+' or '-' "
            "(at most 64 characters, starting with a letter or digit): it names the files evalkit writes"
        )
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "api_key_env":  # never echo what may be a key
        return f"{place.path}: not an environment variable name; give the name of the variable holding the key"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "base_url":  # nor a URL that may carry one
        return (
            f"{place.path}: expected an http:// or https:// address with no user, password, query or fragment "
            "(it is written to results.json and the reports; a key goes in the variable `api_key_env` names)"
        )
    if kind == "literal_error":  # an enumeration (a loss type, a dtype): the near miss, then every value
        expected = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        received = str(error.get("input"))
        return f"{place.path}: unknown value {received!r}{suggestion(received, expected)}; expected one of {expected}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error" and (not place.keys or _KEY_PATH.match(message)):
        # the validator named the key itself
        return _indexed(message, place) if loc and loc[0] in indexed else message
    received = error.get("input")
    return f"{place.path}: {message}" + ("" if isinstance(received, (dict, list)) else f" (got {received!r})")


_KEY_PATH = re.compile(r"^[\w-]+(\.[\w-]+)+: ")


def _indexed(message: str, place: _Place) -> str:
    """A validator's message names its section's key path without list indices (`train.heldout: ...`), since a
    section does not know where it sits; the error's location gives the item (`train.1.heldout: ...`)."""
    plain = ".".join(str(key) for key in place.keys if not isinstance(key, int))
    if not message.startswith(f"{plain}."):
        return message
    return place.path + message[len(plain) :]


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> _Place:
    """Follow `loc` down the schema from `root`: list items by index, a tagged union's member by its tag."""
    keys: list[str | int] = []
    annotation: Any = root
    tag: str | None = None
    union: _Tagged | None = None
    for part in loc:
        tagged = _tagged(annotation)
        if tagged is not None and part in tagged.members:
            annotation, tag, union = tagged.members[part], str(part), tagged
            continue
        keys.append(part)
        tag = union = None
        if isinstance(part, int):
            annotation = _item_of(annotation)
            continue
        spec = _model_in(annotation)
        field = spec.model_fields.get(part) if spec is not None else None
        annotation = field.annotation if field is not None else None
    return _Place(tuple(keys), annotation, tag, union)


def _named(given: Any, keys: tuple[str | int, ...], fallback: Any) -> str:
    """'rule 'NAME': ' when the section at `keys` of what was validated has a name (the gate's rules are the
    suite's one tagged union), else ''."""
    section = given
    try:
        for key in keys:
            section = section[key]
    except (KeyError, IndexError, TypeError):
        section = fallback  # what pydantic saw there (only a missing key's error carries it)
    name = section.get("name") if isinstance(section, dict) else None
    return f"rule {name!r}: " if isinstance(name, str) and name else ""


def _tagged(annotation: Any) -> _Tagged | None:
    """The tagged union `annotation` is (`Annotated[A | B, Field(discriminator=...)]`, optional or not), if it is
    one."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        found = [_tagged(arg) for arg in typing.get_args(annotation)]
        return next((tagged for tagged in found if tagged is not None), None)
    if typing.get_origin(annotation) is not Annotated:
        return None
    inner, *metadata = typing.get_args(annotation)
    key = next((m.discriminator for m in metadata if isinstance(getattr(m, "discriminator", None), str)), None)
    if key is None:
        return None
    members = {
        tag: member for member in typing.get_args(inner) for tag in typing.get_args(member.model_fields[key].annotation)
    }
    return _Tagged(key, members)


def _item_of(annotation: Any) -> Any:
    """The item type of a list annotation (optional or not); None for anything else."""
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        items = [_item_of(arg) for arg in typing.get_args(annotation)]
        return next((item for item in items if item is not None), None)
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The section `annotation` names: a model, or an optional one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
