"""Validation problems in the user's words, with where they are (line and column).

Pydantic's messages speak Python ("Input tag 'x' found using 'kind' does not match any of the
expected tags", "String should match pattern '^[a-z]...'", "Tuple should have at least 3
items after validation"); a scenario author needs the field, what is allowed there, the
closest valid spelling, and the place in the file. :func:`explain` rewrites one pydantic
error; the scenario's JSON Schema says which keys and kinds exist at a location, so "did you
mean" needs no list kept by hand.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

Loc = Sequence[int | str]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: ``path: message`` at ``line``:``column`` (1-based)."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if not self.path:  # free text, as the YAML reader words it
            return f"line {self.line}, column {self.column}: {self.message}" if self.line \
                else self.message
        return f"{self.path}: {self.message}" + (f" (line {self.line})" if self.line else "")

    @classmethod
    def from_text(cls, text: str) -> Problem:
        """A problem already written as text (``line L, column C: message`` or a message)."""
        m = _LINE_COLUMN.match(text)
        if m:
            return cls("", m.group(3), int(m.group(1)), int(m.group(2)))
        return cls("", text)


_LINE_COLUMN = re.compile(r"^line (\d+), column (\d+): (.*)$", re.DOTALL)

# What a name pattern allows, in words. tests/cli/test_check.py fails when a pattern of the
# scenario schema has no entry here, so a changed pattern cannot leave a stale sentence.
PATTERN_WORDS = {
    r"^[a-z][a-z0-9-]{0,62}(\.[a-z0-9][a-z0-9-]{0,62})*$":
        "lower-case letters, digits and '-', starting with a letter; dots between labels "
        "(an FQDN) are allowed",
    r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$":
        "letters, digits, '_', '.' and '-', starting with a letter, at most 64 characters",
    r"^[A-Za-z][A-Za-z0-9_-]{0,63}$":
        "letters, digits, '_' and '-', starting with a letter, at most 64 characters",
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$":
        "letters, digits, '_', '.' and '-', starting with a letter or digit, "
        "at most 64 characters",
}


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") else word


def _noun(loc: Loc) -> str:
    """``hosts[0].name`` -> ``host name``; ``faults[2]`` -> ``fault``."""
    names = [p for p in loc if isinstance(p, str)]
    if not names:
        return "value"
    if len(names) >= 2 and names[-1] == "name":
        return f"{_singular(names[-2])} name"
    return _singular(names[-1]).replace("_", " ")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def explain(err: Mapping[str, Any], message: str, schema: Mapping[str, Any] | None) -> str:
    """``message`` (the loader's words for pydantic error ``err``) made friendlier where we
    know more: the allowed kinds and the closest one, a name's rules, how many items, the
    closest known key. ``schema`` is the JSON Schema of the validated model, or None."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    loc: Loc = err.get("loc") or ()
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag", ""))
        tags = _quoted_list(str(ctx.get("expected_tags", "")))
        return (f"kind: must be one of {', '.join(tags)}; {tag!r} is no {_noun(loc)} kind"
                f"{did_you_mean(tag, tags)}")
    if kind == "union_tag_not_found":
        tags = sorted(_tags_at(schema, loc))
        choices = f" (one of {', '.join(tags)})" if tags else ""
        return f"kind: required: what {_noun(loc)} this is{choices}"
    if kind == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(str(ctx.get("pattern")))
        if words:
            return f"{_shown(err.get('input'))} is not a valid {_noun(loc)}: {words}"
        return f"{_shown(err.get('input'))} does not match {ctx.get('pattern')}"
    if kind in ("too_short", "too_long"):
        return _count(loc, ctx, _at(schema, loc))
    if kind == "extra_forbidden" and loc:
        known = _keys_at(schema, loc[:-1])
        return message + did_you_mean(str(loc[-1]), known)
    if message.startswith("Input should be "):
        rest = message.removeprefix("Input should be ")
        return f"must be {rest}, got {_shown(err.get('input'))}"
    return message


def without_typo_twins(problems: list[Problem]) -> list[Problem]:
    """Drop ``a.gbps: required`` when ``a.gpbs: unknown key; did you mean 'gbps'?`` says the
    same: one typo, one line."""
    meant = set()
    for p in problems:
        m = _SUGGESTION.search(p.message)
        if m:
            parent = p.path.rpartition(".")[0]
            meant.add(f"{parent}.{m.group(1)}" if parent else m.group(1))
    return [p for p in problems
            if not (p.message.startswith("required") and p.path in meant)]


_SUGGESTION = re.compile(r"did you mean '([^']+)'\?$")


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``; did you mean 'x'?`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f"; did you mean {close[0]!r}?" if close else ""


def _quoted_list(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def _count(loc: Loc, ctx: Mapping[str, Any], node: Mapping[str, Any] | None) -> str:
    noun = str(loc[-1]).replace("_", " ") if loc and isinstance(loc[-1], str) else "items"
    actual = ctx.get("actual_length")
    low = (node or {}).get("minItems", ctx.get("min_length"))
    high = (node or {}).get("maxItems", ctx.get("max_length"))
    if low is not None and low == high:
        need = f"exactly {low}"
    elif "min_length" in ctx:
        need = f"at least {low}"
    else:
        need = f"at most {high}"
    got = f", got {actual}" if actual is not None else ""
    if need.endswith(" 1"):
        noun = _singular(noun)
    return f"needs {need} {noun}{got}"


def _resolve(schema: Mapping[str, Any], node: Any) -> Any:
    while isinstance(node, Mapping) and "$ref" in node:
        name = str(node["$ref"]).rsplit("/", 1)[-1]
        node = schema.get("$defs", {}).get(name)
    return node


def _at(schema: Mapping[str, Any] | None, loc: Loc) -> Mapping[str, Any] | None:
    """The schema node at pydantic location ``loc`` (union tags in ``loc`` pick members)."""
    if schema is None:
        return None
    node: Any = _resolve(schema, schema)
    for part in loc:
        node = _step(schema, node, part)
        if node is None:
            return None
    return node if isinstance(node, Mapping) else None


def _step(schema: Mapping[str, Any], node: Any, part: int | str) -> Any:
    if not isinstance(node, Mapping):
        return None
    node = _resolve(schema, node)
    members = node.get("oneOf") or node.get("anyOf")
    if members:
        mapping = (node.get("discriminator") or {}).get("mapping") or {}
        if part in mapping:  # pydantic's location names the member by its tag
            return _resolve(schema, {"$ref": mapping[part]})
        for m in members:
            found = _step(schema, _resolve(schema, m), part)
            if found is not None:
                return found
        return None
    if isinstance(part, int):
        return _resolve(schema, node.get("items") or node.get("prefixItems"))
    props = node.get("properties") or {}
    if part in props:
        return _resolve(schema, props[part])
    extra = node.get("additionalProperties")
    return _resolve(schema, extra) if isinstance(extra, Mapping) else None


def _keys_at(schema: Mapping[str, Any] | None, loc: Loc) -> list[str]:
    node = _at(schema, loc)
    return list((node or {}).get("properties") or {})


def _tags_at(schema: Mapping[str, Any] | None, loc: Loc) -> list[str]:
    node = _at(schema, loc)
    return list(((node or {}).get("discriminator") or {}).get("mapping") or {})


def position(node: yaml.Node | None, loc: Loc) -> tuple[int | None, int | None]:
    """Line and column (1-based) in the YAML source of ``loc``, as deep as it exists; an
    unknown key is shown at the key itself."""
    if node is None:
        return None, None
    mark = node.start_mark
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if getattr(k, "value", None) == part:
                    nxt, mark = v, k.start_mark
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            nxt = node.value[part]
            mark = nxt.start_mark
        if nxt is None:
            break
        node = nxt
    return mark.line + 1, mark.column + 1
