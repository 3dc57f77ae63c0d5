"""Check a recipe's step list and tell, without running anything, what ``run()`` would do.

``validate()`` checks that every artifact a step needs is produced by an earlier step; ``plan()`` tells for
each step whether it is up to date, would be restored from the run cache, will run, or is blocked.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Iterable

from rich.console import Console
from rich.text import Text

from ..errors import OvexportError, PlanError
from .freshness import cache_note, freshness, resolve
from .lock import Lock
from .run_cache import RunCache, chosen
from .step import REGISTRY, Step, StepRegistry, work_dir


class LockWarning(UserWarning):
    """The lock file was unreadable and is ignored (every step reruns)."""


@dataclass
class PlanRow:
    name: str
    produces: str
    consumes: tuple[str, ...]
    status: str  # "up to date" | "cached" (in the run cache) | "will run" | "blocked"
    fingerprint: str | None
    reason: str


def validate(recipe: Any, registry: StepRegistry = REGISTRY) -> list[Step]:
    """Step instances of ``recipe.steps``; PlanError if they cannot run in this order."""
    names = list(recipe.steps)
    if not names:
        raise PlanError(f"recipe '{recipe.name}' has no steps",
                        fix=f"list steps among: {', '.join(registry.names()) or 'none'}")
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise PlanError(f"step '{n}' is listed twice in steps", fix=f"keep one '{n}'")
        seen.add(n)
    steps = [registry.get(n) for n in names]
    in_recipe: dict[str, str] = {}
    for s in steps:
        if s.produces in in_recipe:
            raise PlanError(f"steps '{in_recipe[s.produces]}' and '{s.name}' both produce artifact "
                            f"'{s.produces}'", fix="keep only one of them in steps")
        in_recipe[s.produces] = s.name
    produced: set[str] = set()
    for s in steps:
        for a in s.consumes:
            if a in produced:
                continue
            if a in in_recipe and in_recipe[a] != s.name:
                fix = f"move '{in_recipe[a]}' before '{s.name}' in steps"
            else:
                cands = [c for c in registry.producers_of(a) if c != s.name]
                fix = (f"add {' or '.join(repr(c) for c in cands)} before '{s.name}' in steps"
                       if cands else f"no registered step produces '{a}'")
            raise PlanError(f"step '{s.name}' needs artifact '{a}', which no earlier step "
                            f"produces", fix=fix)
        for a in s.optional:
            if a not in produced and a in in_recipe and in_recipe[a] != s.name:
                raise PlanError(f"step '{s.name}' uses artifact '{a}', but '{in_recipe[a]}' which "
                                f"produces it comes after it",
                                fix=f"move '{in_recipe[a]}' before '{s.name}' in steps")
        produced.add(s.produces)
    return steps


def check_selection(recipe: Any, force: Iterable[str], until: str | None) -> set[str]:
    """The names of the forced steps; PlanError when ``--force``/``--until`` name no step of the recipe."""
    names = list(recipe.steps)
    known = ", ".join(names)
    if until is not None and until not in names:
        raise PlanError(f"--until '{until}' is not a step of recipe '{recipe.name}'",
                        fix=f"use one of: {known}")
    force = set(force or ())
    for f in sorted(force):
        if f not in names:
            raise PlanError(f"--force '{f}' is not a step of recipe '{recipe.name}'",
                            fix=f"use one of: {known}")
    return force


def plan(recipe: Any, registry: StepRegistry = REGISTRY, *, force: Iterable[str] = (),
         until: str | None = None, console: Console | None = None,
         run_cache: "RunCache | bool | None" = True) -> list[PlanRow]:
    """What ``run()`` with the same arguments would do, without running anything.

    Steps after ``until`` are not listed. A step whose params()/tool_versions() raises an
    OvexportError is "blocked" (reason: the error), and so are the steps that need its artifact.
    """
    steps = validate(recipe, registry)
    forced = check_selection(recipe, force, until)
    work = work_dir(recipe)
    lock = Lock.for_work(work)
    if lock.warning:
        if console is not None:
            console.print(Text(f"warning: {lock.warning}", style="yellow"))
        else:
            warnings.warn(lock.warning, LockWarning, stacklevel=2)
    cache = chosen(run_cache, recipe)
    producer: dict[str, str] = {}
    digests: dict[str, str | None] = {}  # None: produced by a step that will run
    blocked: set[str] = set()
    rows: list[PlanRow] = []
    for s in steps:
        used = [a for a in (*s.consumes, *s.optional) if a in producer]
        row = PlanRow(s.name, s.produces, tuple(s.consumes), "will run", None, "")
        rows.append(row)
        producer[s.produces] = s.name
        digests[s.produces] = None
        bad = [a for a in used if a in blocked]
        if bad:
            row.status = "blocked"
            row.reason = f"needs '{bad[0]}' from blocked step '{producer[bad[0]]}'"
            blocked.add(s.produces)
        else:
            try:
                params, tools = resolve(s, recipe)
            except OvexportError as e:
                row.status, row.reason = "blocked", e.line()
                blocked.add(s.produces)
            else:
                pending = [a for a in used if digests[a] is None]
                if pending:
                    row.reason = f"after '{producer[pending[0]]}' (rechecked then)"
                else:
                    f = freshness(s, recipe, work, lock, {a: digests[a] for a in used}, params, tools,
                                  s.name in forced)
                    row.fingerprint, row.reason = f.fingerprint, f.reason
                    hit = cache.lookup(f.fingerprint, discard=False) if cache is not None and f.may_restore else None
                    if f.up_to_date:
                        row.status = "up to date"
                        digests[s.produces] = f.digest
                    elif hit is not None:
                        row.status, row.reason = "cached", f"{row.reason}; {cache_note(hit)}"
                        digests[s.produces] = hit.digest
        if s.name == until:
            break
    return rows
