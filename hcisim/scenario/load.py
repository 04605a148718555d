"""Read, validate and write scenario files; turn validation failures into readable errors."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from hcisim.scenario.claims import ClaimSpec
from hcisim.scenario.faults import FAULT_KINDS
from hcisim.scenario.messages import Problem, explain, position, without_typo_twins
from hcisim.scenario.scenario import Scenario

DEFAULT_SCENARIO = "default"


class ScenarioError(Exception):
    """A scenario file that cannot be used; ``problems`` are ``path: message`` lines,
    ``details`` the same as :class:`Problem` (with line and column, for ``hcisim check``)."""

    def __init__(self, source: str, problems: Sequence[str | Problem]) -> None:
        self.source = source
        self.details = [p if isinstance(p, Problem) else Problem.from_text(p) for p in problems]
        self.problems = [str(p) for p in self.details]
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: invalid scenario\n{lines}")


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: Any, tag: str | None) -> str:
    """The problem in words; ``tag`` is the kind of the fault or claim it is inside."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "literal_error":
        return "must be " + str(ctx.get("expected", "")).replace("'", "")
    if kind == "union_tag_invalid":  # a fault or claim of an unknown kind
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        return f"kind: must be one of {expected}"
    if kind == "union_tag_not_found":
        return "kind: required"
    if kind == "extra_forbidden":
        return f"not a field of {tag}" if tag else "unknown key"
    if kind == "missing":
        return f"required for {tag}" if tag else "required"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def format_validation_error(exc: ValidationError, source_text: str | None = None) -> list[str]:
    return [str(p) for p in validation_problems(exc, source_text)]


@cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def validation_problems(exc: ValidationError, source_text: str | None = None,
                        model: type[BaseModel] | None = None) -> list[Problem]:
    """Every problem of ``exc``, located in ``source_text``; with ``model`` (the validated
    class) also in friendlier words (allowed kinds, did you mean, name rules, counts)."""
    node = None
    if source_text is not None:
        try:
            node = yaml.compose(source_text)
        except yaml.YAMLError:
            node = None
    problems: list[Problem] = []
    errors = exc.errors()
    for err in errors:
        if err["type"] == "too_short" and any(
            e is not err and tuple(e["loc"][: len(err["loc"])]) == tuple(err["loc"])
            for e in errors
        ):
            continue  # pydantic counts the items left after a failed item: a side effect
        loc = [p for p in err["loc"] if not (isinstance(p, str) and "[" in p)]
        # Pydantic adds the union tag to the location of a discriminated union member.
        tags = [p for p in loc if p in _UNION_TAGS]
        loc = [p for p in loc if p not in _UNION_TAGS]
        msg = _message(err, str(tags[-1]) if tags else None)
        if model is not None:
            msg = explain(err, msg, _schema(model))
        path = _path(loc)
        field = _FIELD_PREFIX.match(msg)
        if field:  # a model validator's "field: message" continues the path
            sub = field.group(1)
            path = f"{path}.{sub}" if path and not sub.startswith("[") else path + sub
            msg = field.group(2)
            loc = _parse_path(path)
        line, column = position(node, loc)
        problems.append(Problem(path or "<top>", msg, line, column))
    return without_typo_twins(problems)


_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.*)$", re.DOTALL)


def _parse_path(path: str) -> list[int | str]:
    out: list[int | str] = []
    for part in path.replace("]", "").split("."):
        name, *idx = part.split("[")
        if name:
            out.append(name)
        out.extend(int(i) for i in idx if i.isdigit())
    return out


# every claim kind of the ClaimSpec union (a new kind needs no edit here)
_CLAIM_TAGS = {get_args(m.model_fields["kind"].annotation)[0]
               for m in get_args(get_args(ClaimSpec)[0])}
_UNION_TAGS = _CLAIM_TAGS | set(FAULT_KINDS)


def yaml_mapping(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The YAML document as a mapping, or (None, why not) with line and column."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return None, f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"
    if not isinstance(data, dict):
        return None, "<top>: not a mapping of keys"
    return data, None


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    data, why = yaml_mapping(text)
    if data is None:
        raise ScenarioError(source, [(why or "").replace(
            "not a mapping of keys", "a scenario is a mapping of keys (name, hosts, ...)")])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, validation_problems(exc, text, Scenario)) from None


def builtin_path(name: str = DEFAULT_SCENARIO) -> Path:
    return Path(str(resources.files("hcisim") / "builtin" / f"{name}.yaml"))


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Load ``path``, or the built-in default scenario when ``path`` is None."""
    p = builtin_path() if path is None else Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ScenarioError(str(p), [f"cannot read file: {exc.strerror}"]) from None
    return parse_scenario(text, str(p))


def resolved_dict(sc: Scenario) -> dict[str, Any]:
    """Every field, defaults filled in: what was really run."""
    return sc.model_dump(mode="json")


def dump_scenario(sc: Scenario) -> str:
    return yaml.safe_dump(resolved_dict(sc), sort_keys=False, width=100)


def save_scenario(sc: Scenario, path: Path) -> None:
    path.write_text(
        "# resolved scenario: every default filled in; `hcisim run` this file to repeat it\n"
        + dump_scenario(sc)
    )


def json_schema() -> str:
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hcisim scenario"
    return json.dumps(schema, indent=2)


def with_overrides(sc: Scenario, overrides: dict[str, Any]) -> Scenario:
    """A copy of ``sc`` with dotted-path values replaced (``hosts[0].ram_gib``), re-validated."""
    data = resolved_dict(sc)
    for path, value in overrides.items():
        _set_path(data, _parse_path(path), value, path)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{sc.name} with {overrides}", format_validation_error(exc)) from None


def _set_path(data: Any, loc: list[int | str], value: Any, full: str) -> None:
    cur = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        try:
            if last:
                if isinstance(cur, dict) and part not in cur:
                    raise KeyError(part)
                cur[part] = value
            else:
                cur = cur[part]
        except (KeyError, IndexError, TypeError):
            raise ScenarioError("--set", [f"{full}: no such field in the scenario"]) from None
