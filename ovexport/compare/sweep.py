"""Variants of a recipe: a grid of ``--sweep KEY=V1,V2`` values plus explicit ``--variant "K=V K=V"`` points.

Every variant is the recipe with ``--set`` overrides and a name of its own (``<recipe>.v-<hash>``, stable for
the same overrides), validated by the recipe schema before anything is built: a bad key or value is one
line naming the ``--sweep`` that caused it, with the fix.
"""
from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ovexport.errors import RecipeError

SWEEP_FIX = ("write --sweep dotted.key=V1,V2 (or --variant \"K=V K=V\") with recipe keys (see `ovexport check --help` "
             "and recipes/*.yaml) and values the recipe accepts, e.g. --sweep compression.llm.ratio=0.6,1.0")


@dataclass(frozen=True)
class Sweep:
    key: str
    values: tuple[Any, ...]
    raw: str


@dataclass
class Variant:
    label: str                              # human: "llm.ratio=0.4 llm.group_size=64" ("base" for none)
    overrides: list[str] = field(default_factory=list)   # --set strings
    origin: list[str] = field(default_factory=list)      # the --sweep/--variant texts behind each override

    def name(self, base: str) -> str:
        if not self.overrides:
            return base
        h = hashlib.sha256("\n".join(sorted(self.overrides)).encode()).hexdigest()[:8]
        return f"{base}.v-{h}"


def _dump(value: Any) -> str:
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def parse_sweep(raw: str) -> Sweep:
    key, sep, rhs = raw.partition("=")
    key = key.strip()
    if not sep or not key or any(not p for p in key.split(".")):
        raise RecipeError([f"--sweep {raw}: expected dotted.key=V1,V2"], fix=SWEEP_FIX)
    try:
        values = yaml.safe_load(f"[{rhs}]")
    except yaml.YAMLError as e:
        raise RecipeError([f"--sweep {raw}: values are not valid YAML ({getattr(e, 'problem', None) or e})"],
                          fix=SWEEP_FIX) from None
    if not values:
        raise RecipeError([f"--sweep {raw}: no values"], fix=SWEEP_FIX)
    if len(set(map(_dump, values))) != len(values):
        raise RecipeError([f"--sweep {raw}: a value is listed twice"], fix="list each value once")
    return Sweep(key=key, values=tuple(values), raw=raw)


def _short(key: str) -> str:
    return key.removeprefix("compression.")


_VARIANT_SPLIT = re.compile(r"\s+(?=[A-Za-z_][\w.]*=)")


def parse_variant(raw: str) -> Variant:
    """``"compression.llm.mode=int8_asym compression.image_encoder={mode: int8_static}"`` -> a Variant (parts are
    split where whitespace is followed by ``key=``, so YAML values may hold spaces)."""
    overrides, labels = [], []
    for part in _VARIANT_SPLIT.split(raw.strip()) if raw.strip() else []:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise RecipeError([f"--variant {raw!r}: {part!r} is not KEY=VALUE"],
                              fix='write --variant "dotted.key=value dotted.key=value"')
        overrides.append(f"{key}={value}")
        labels.append(f"{_short(key)}={value}")
    return Variant(label=" ".join(labels) or "base", overrides=overrides, origin=[f"--variant {raw}"] * len(overrides))


def variants(sweeps: Sequence[Sweep], explicit: Sequence[Variant] = (), include_base: bool = False) -> list[Variant]:
    """The grid of ``sweeps`` (every combination, in order), then ``explicit``, the base first when asked."""
    out: list[Variant] = [Variant(label="base")] if include_base else []
    if sweeps:
        keys = [s.key for s in sweeps]
        if len(set(keys)) != len(keys):
            raise RecipeError([f"--sweep {k}: swept twice" for k in keys if keys.count(k) > 1][:1],
                              fix="give each key one --sweep with all its values")
        for combo in itertools.product(*(s.values for s in sweeps)):
            ov = [f"{s.key}={_dump(v)}" for s, v in zip(sweeps, combo)]
            out.append(Variant(label=" ".join(f"{_short(s.key)}={_dump(v)}" for s, v in zip(sweeps, combo)),
                               overrides=ov, origin=[f"--sweep {s.raw}" for s in sweeps]))
    out.extend(explicit)
    seen: dict[tuple[str, ...], str] = {}
    unique = []
    for v in out:
        k = tuple(sorted(v.overrides))
        if k not in seen:
            seen[k] = v.label
            unique.append(v)
    return unique


def _problems(recipe_path: str, overrides: Sequence[str]) -> list[str]:
    from ovexport.recipe.load import load_recipe

    try:
        load_recipe(recipe_path, list(overrides))
    except RecipeError as e:
        return e.problems
    return []


def _check_values(recipe_path: str, base_overrides: Sequence[str], vs: Sequence[Variant]) -> None:
    """Each swept key=value alone on the recipe: a bad key or value is reported once, not once per grid point."""
    from ovexport.recipe.load import load_recipe

    problems = []
    seen = set()
    for v in vs:
        for ov, origin in zip(v.overrides, v.origin):
            if ov in seen:
                continue
            seen.add(ov)
            try:
                load_recipe(recipe_path, [*base_overrides, ov])
            except RecipeError as e:
                key = ov.partition("=")[0]
                with_rest = _problems(recipe_path, [*base_overrides, *v.overrides])
                for p in e.problems:
                    # only problems of this key itself: others (a key it needs, set by another sweep) are
                    # judged on the grid points, and so is one the variant's other keys answer (a mode
                    # that needs the calibration block the same --variant sets)
                    if not p.startswith(f"--set {ov}: {key}") or p not in with_rest:
                        continue
                    p = p.replace(f"--set {ov}:", f"{origin}:")
                    # a bad key is one problem whatever its value
                    problems.append(p if "unknown key" not in p else p.replace(origin, f"{origin.split()[0]} {key}=..."))
    if problems:
        raise RecipeError(list(dict.fromkeys(problems)), fix=SWEEP_FIX)


def _same_build(recipe) -> str:
    """What a variant builds: its resolved recipe without its name (``ratio=0.6`` on a ratio-0.6 recipe is the
    base itself)."""
    from ovexport.engine.fingerprint import canonical_json

    return canonical_json({k: v for k, v in recipe.resolved().items() if k != "name"})


def one_source(loaded: Sequence[tuple[Variant, Any]]) -> None:
    """Every variant is scored against one reference, that of the first variant's checkpoint: a variant of another
    ``source`` is refused."""
    if not loaded:
        return
    first_v, first = loaded[0]
    for v, r in loaded[1:]:
        if r.source_spec.uri != first.source_spec.uri:
            raise RecipeError([f"variant {v.label} builds from source {r.source_spec.uri}, not "
                               f"{first.source_spec.uri} as variant {first_v.label} does: every variant is scored "
                               "against one reference"],
                              fix="compare one source per run (sweep the source in separate `ovexport compare` runs)")


def load_variants(recipe_path: str, base_overrides: Sequence[str], vs: Sequence[Variant]) -> list[tuple[Variant, Any]]:
    """Each variant's validated ``Recipe`` (named ``<recipe>.v-<hash>``); every problem of every variant is
    reported at once, each naming the ``--sweep``/``--variant`` behind it. A variant that resolves to the same
    recipe as an earlier one (a swept value equal to the base's) is one row: the earlier one, labelled with both.
    Variants of another source than the first are refused (``one_source``)."""
    from ovexport.recipe.load import load_recipe

    base = load_recipe(recipe_path, base_overrides)
    _check_values(recipe_path, base_overrides, vs)
    out, problems = [], []
    builds: dict[str, Variant] = {}
    for v in vs:
        name = v.name(base.name)
        try:
            r = load_recipe(recipe_path, [*base_overrides, *v.overrides, f"name={name}"])
        except RecipeError as e:
            for p in e.problems:
                for ov, origin in zip(v.overrides, v.origin):
                    p = p.replace(f"--set {ov}:", f"{origin} (variant {v.label}):")
                problems.append(p)
            continue
        same = builds.get(_same_build(r))
        if same is not None:
            same.label = f"{same.label} = {v.label}"
            continue
        builds[_same_build(r)] = v
        out.append((v, r))
    if problems:
        # the same bad value shows up in several grid points: report each problem once
        raise RecipeError(list(dict.fromkeys(problems)), fix=SWEEP_FIX)
    one_source(out)
    return out
