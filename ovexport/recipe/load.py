"""Load recipes and pipeline files from YAML, with ``file:line`` errors and ``--set`` overrides.

Every problem found is collected and raised at once as ``RecipeError(problems)``; each problem is one string:

- ``<file>:<line>: <dotted.key>: <message>`` for a problem in a file (the line of the offending key, or of its
  parent mapping when the key is missing);
- ``--set <key>=<value>: <dotted.key>: <message>`` for a problem that comes from an override.
"""
from __future__ import annotations

import copy
import difflib
import os.path
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ovexport.errors import RecipeError
from ovexport.recipe.schema import PipelineSpec, Recipe

RECIPE_FIX = "edit the recipe so it matches the schema (see recipes/*.yaml for examples)"
OVERRIDE_FIX = "write overrides as --set dotted.key=value, the value in YAML (e.g. --set compression.llm.ratio=0.8)"

Loc = tuple[str, ...]


# ----------------------------------------------------------------------------------------------- YAML


@dataclass
class _Doc:
    """A parsed YAML file: the data plus the line (1-based) of every key / list item."""

    label: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    root_line: int = 1
    problems: list[tuple[int, str]] = field(default_factory=list)  # duplicate keys

    def line_of(self, loc: Sequence[Any]) -> int:
        """Line of ``loc``, or of its closest existing parent (the document start for the top level)."""
        key = tuple(str(p) for p in loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.root_line


def _read_yaml(path: Path) -> _Doc:
    """Parse ``path``; raise RecipeError for a missing/unreadable file or a YAML syntax error."""
    label = str(path)
    if not path.exists():
        raise RecipeError([f"{label}: file not found"],
                          fix=f"check the path (working directory: {os.getcwd()}); recipes live in recipes/*.yaml")
    if path.is_dir():
        raise RecipeError([f"{label}: is a directory, not a YAML file"], fix="pass a recipe or pipeline .yaml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError([f"{label}: cannot read: {exc}"], fix="make the file a readable UTF-8 YAML file") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = exc.problem or exc.context or "syntax error"
        if exc.context and exc.problem and exc.context_mark is not None:
            what += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise RecipeError([f"{label}:{line}: invalid YAML: {what}"], fix="fix the YAML syntax") from None
    except yaml.YAMLError as exc:
        raise RecipeError([f"{label}:1: invalid YAML: {exc}"], fix="fix the YAML syntax") from None
    finally:
        loader.dispose()
    doc = _Doc(label=label, data=data)
    if node is not None:
        doc.root_line = node.start_mark.line + 1
        _index(node, (), doc)
    return doc


def _index(node: yaml.Node, loc: Loc, doc: _Doc) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                doc.problems.append((line, f"{doc.label}:{line}: {_dotted(loc + (key,))}: duplicate key "
                                           f"(first at line {seen[key]})"))
            else:
                seen[key] = line
                doc.lines[loc + (key,)] = line
            _index(value_node, loc + (key,), doc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            doc.lines[loc + (str(i),)] = item.start_mark.line + 1
            _index(item, loc + (str(i),), doc)


def _dotted(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc)


# ------------------------------------------------------------------------------------------ overrides


@dataclass(frozen=True)
class Override:
    raw: str            # as typed, without the --set
    key: Loc            # dotted key split on '.'
    value: Any          # parsed as YAML


def parse_override(raw: str) -> Override:
    """Parse ``dotted.key=value``; the value is YAML (``null``, ``3``, ``[a, b]``, ``{k: v}``). Raises
    RecipeError when malformed."""
    key_text, sep, value_text = raw.partition("=")
    key_text = key_text.strip()
    if not sep:
        raise RecipeError([f"--set {raw}: missing '=' (expected dotted.key=value)"], fix=OVERRIDE_FIX)
    parts = tuple(key_text.split("."))
    if not key_text or any(not p.strip() for p in parts):
        raise RecipeError([f"--set {raw}: bad key {key_text!r} (expected dotted.key=value)"], fix=OVERRIDE_FIX)
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as exc:
        raise RecipeError([f"--set {raw}: value is not valid YAML: {getattr(exc, 'problem', None) or exc}"],
                          fix=OVERRIDE_FIX) from None
    return Override(raw=raw, key=tuple(p.strip() for p in parts), value=value)


def apply_overrides(data: dict, overrides: Sequence[Override],
                    ) -> tuple[dict, list[tuple[Override, list[Loc]]], list[str]]:
    """Apply overrides to a deep copy of ``data``. Missing or null intermediate mappings are created; list
    items are addressed by index (``steps.0``). Returns (new data, paths each override wrote, problems)."""
    data = copy.deepcopy(data)
    touched: list[tuple[Override, list[Loc]]] = []
    problems: list[str] = []
    for ov in overrides:
        paths: list[Loc] = []
        cur: Any = data
        ok = True
        for i, part in enumerate(ov.key):
            last = i == len(ov.key) - 1
            here = ov.key[: i + 1]
            if isinstance(cur, dict):
                if last:
                    cur[part] = copy.deepcopy(ov.value)
                    paths.append(here)
                    break
                nxt = cur.get(part)
                if nxt is None and ov.key[i + 1].isdigit():
                    problems.append(f"--set {ov.raw}: {_dotted(here)}: there is no list to index into; "
                                    f"set the whole value instead, e.g. --set {_dotted(here)}=[...]")
                    ok = False
                    break
                if nxt is None:
                    nxt = cur[part] = {}
                    paths.append(here)
                elif not isinstance(nxt, (dict, list)):
                    problems.append(f"--set {ov.raw}: {_dotted(here)}: is {_type_name(nxt)} {nxt!r}, not a mapping, "
                                    f"so it has no key {ov.key[i + 1]!r}")
                    ok = False
                    break
                cur = nxt
            else:  # list
                if not (part.isdigit() and int(part) < len(cur)):
                    problems.append(f"--set {ov.raw}: {_dotted(here)}: {_dotted(ov.key[:i])} is a list of "
                                    f"{len(cur)} item(s); address an item by its index 0..{len(cur) - 1}")
                    ok = False
                    break
                idx = int(part)
                if last:
                    cur[idx] = copy.deepcopy(ov.value)
                    paths.append(here)
                    break
                if cur[idx] is None:
                    cur[idx] = {}
                    paths.append(here)
                elif not isinstance(cur[idx], (dict, list)):
                    problems.append(f"--set {ov.raw}: {_dotted(here)}: is {_type_name(cur[idx])} {cur[idx]!r}, "
                                    "not a mapping")
                    ok = False
                    break
                cur = cur[idx]
        if ok:
            touched.append((ov, paths))
    return data, touched, problems


def _type_name(v: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}.get(type(v), type(v).__name__)


# ------------------------------------------------------------------------------------ error formatting


def _model_at(root: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The pydantic model class that validates the mapping at ``loc`` (None if not a model)."""
    cls: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            continue  # list item: the annotation's inner model was already picked
        if cls is None or part not in cls.model_fields:
            return None
        cls = _find_model(cls.model_fields[part].annotation)
    return cls


def _find_model(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _message(err: dict, root: type[BaseModel]) -> str:
    etype, loc, msg = err["type"], err["loc"], err["msg"]
    if etype == "missing":
        return "required key is missing"
    if etype == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        allowed = list(model.model_fields) if model is not None else []
        out = f"unknown key {str(loc[-1])!r}"
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        if close:
            out += f"; did you mean {close[0]!r}?"
        if allowed:
            out += " (allowed: " + ", ".join(allowed) + ")"
        return out
    if etype == "recipe_rule":
        return msg
    if etype == "value_error":
        return msg.removeprefix("Value error, ")
    if etype == "model_type" or etype == "dict_type":
        return f"expected a mapping, got {_type_name(err.get('input'))} {err.get('input')!r}"
    inp = err.get("input")
    if isinstance(inp, (dict, list)):
        return msg
    if etype == "string_type" and isinstance(inp, (int, float)) and not isinstance(inp, bool):
        return f"{msg}, got {inp!r} (quote it in YAML)"
    return f"{msg}, got {inp!r}"


def _format_errors(exc: ValidationError, doc: _Doc, root: type[BaseModel],
                   touched: list[tuple[Override, list[Loc]]]) -> tuple[list[tuple[int, str]], list[str]]:
    """Split pydantic errors into (line, problem) for the file and problems attributed to overrides."""
    in_file: list[tuple[int, str]] = []
    from_overrides: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        sloc = tuple(str(p) for p in loc)
        msg = _message(err, root)
        where = f"{_dotted(loc)}: " if loc else ""
        owner = None
        for ov, paths in reversed(touched):  # the last override wins
            if any(sloc[: len(p)] == p for p in paths):
                owner = ov
                break
        if owner is not None:
            from_overrides.append(f"--set {owner.raw}: {where}{msg}")
        else:
            line = doc.line_of(loc)
            in_file.append((line, f"{doc.label}:{line}: {where}{msg}"))
    return in_file, from_overrides


# ---------------------------------------------------------------------------------------------- loading


def _abs(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _check_mapping(doc: _Doc, what: str) -> None:
    if doc.data is None:
        raise RecipeError([f"{doc.label}:1: the file is empty; a {what} is a YAML mapping"],
                          fix="see recipes/*.yaml and pipeline.yaml for examples")
    if not isinstance(doc.data, dict):
        raise RecipeError([f"{doc.label}:{doc.root_line}: the top level must be a mapping of keys, "
                           f"got {_type_name(doc.data)}"],
                          fix="see recipes/*.yaml and pipeline.yaml for examples")


def _recipe_problems(path: Path, overrides: Sequence[str]) -> tuple[Recipe | None, list[str]]:
    path = Path(path)
    parsed = [parse_override(o) for o in overrides]  # malformed override: raises at once
    doc = _read_yaml(path)
    _check_mapping(doc, "recipe")
    data, touched, problems = apply_overrides(doc.data, parsed)
    located: list[tuple[int, str]] = list(doc.problems)
    recipe = None
    try:
        recipe = Recipe.model_validate(data, context={"base_dir": _abs(path).parent, "path": _abs(path)})
    except ValidationError as exc:
        in_file, from_ov = _format_errors(exc, doc, Recipe, touched)
        located += in_file
        problems += from_ov
    located.sort(key=lambda t: t[0])  # stable: same-line problems keep pydantic's order
    all_problems = [p for _, p in located] + problems
    return (recipe if not all_problems else None), all_problems


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Load and validate one recipe; ``overrides`` are ``dotted.key=value`` strings (``--set``)."""
    recipe, problems = _recipe_problems(Path(path), overrides)
    if problems:
        raise RecipeError(problems, fix=RECIPE_FIX)
    assert recipe is not None
    return recipe


def load_pipeline(path: str | Path, overrides: Sequence[str] = ()) -> tuple[PipelineSpec, list[Recipe]]:
    """Load a pipeline file and every recipe it names (``overrides`` apply to each recipe). All problems of
    all files are raised together."""
    path = Path(path)
    doc = _read_yaml(path)
    _check_mapping(doc, "pipeline")
    located: list[tuple[int, str]] = []
    spec: PipelineSpec | None = None
    try:
        spec = PipelineSpec.model_validate(doc.data)
    except ValidationError as exc:
        located, _ = _format_errors(exc, doc, PipelineSpec, [])
    problems: list[str] = []
    entries = doc.data.get("recipes")
    recipes: list[Recipe] = []
    names: dict[str, int] = {}
    if isinstance(entries, list):
        base = path.parent
        for i, entry in enumerate(entries):
            if not isinstance(entry, str) or not entry.strip():
                continue  # reported by the schema
            line = doc.line_of(("recipes", i))
            rpath = base / entry
            if not rpath.is_file():
                located.append((line, f"{doc.label}:{line}: recipes.{i}: recipe file not found: {rpath}"))
                continue
            try:
                recipe, rproblems = _recipe_problems(rpath, overrides)
            except RecipeError as exc:
                if any(p.startswith("--set ") for p in exc.problems):
                    raise
                problems += exc.problems
                continue
            problems += rproblems
            if recipe is None:
                continue
            if recipe.name in names:
                j = names[recipe.name]
                located.append((line, f"{doc.label}:{line}: recipes.{i}: recipe name {recipe.name!r} is already "
                                      f"used by recipes.{j} ({entries[j]}); names must be unique in a pipeline"))
                continue
            names[recipe.name] = i
            recipes.append(recipe)
    located += doc.problems
    located.sort(key=lambda t: t[0])
    all_problems = [p for _, p in located] + problems
    if all_problems:
        raise RecipeError(all_problems, fix=RECIPE_FIX)
    assert spec is not None
    return spec, recipes


def is_pipeline_data(data: Any) -> bool:
    return isinstance(data, dict) and "recipes" in data


def load_any(path: str | Path, overrides: Sequence[str] = ()) -> list[Recipe]:
    """A pipeline file (top-level ``recipes:``) gives its recipes; a recipe file gives itself."""
    path = Path(path)
    doc = _read_yaml(path)
    if is_pipeline_data(doc.data):
        return load_pipeline(path, overrides)[1]
    return [load_recipe(path, overrides)]
