"""Dummy steps and recipe for the engine tests (not collected: no ``test_`` prefix).

Isolated steps run in a ``spawn`` subprocess that imports this module by name, so it must stay a
top-level module importable from ``tests/unit`` (the test modules put that directory on sys.path;
spawn children inherit the parent's sys.path).
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ovexport.engine import Step, StepContext, StepRegistry
from ovexport.errors import RecipeError


class Output(BaseModel):
    root: str


class DummyRecipe(BaseModel):
    name: str = "demo"
    steps: list[str]
    output: Output
    knobs: dict[str, Any] = Field(default_factory=dict)      # fingerprinted (per step name)
    behaviour: dict[str, Any] = Field(default_factory=dict)  # not fingerprinted (per step name)


def make_recipe(root: Path, steps: list[str], **kw: Any) -> DummyRecipe:
    return DummyRecipe(steps=steps, output=Output(root=str(root)), **kw)


def make_registry(*classes: type[Step]) -> StepRegistry:
    reg = StepRegistry()
    for c in classes:
        reg.register(c)
    return reg


def _misbehave(ctx: StepContext, name: str) -> None:
    b = ctx.recipe.behaviour.get(name)
    if b == "raise":
        (ctx.out / "partial.txt").write_text("half")
        raise ValueError(f"{name} exploded")


class _Base(Step):
    isolate = False

    def params(self, recipe: Any) -> dict:
        return {"knob": recipe.knobs.get(self.name, 1)}


class StepA(_Base):
    name = "a"
    produces = "art_a"

    def run(self, ctx: StepContext) -> dict:
        _misbehave(ctx, self.name)
        with ctx.progress("writing a", total=2) as advance:
            with ctx.progress("nested", total=None) as inner:
                inner()
            advance()
            advance(1)
        ctx.log("wrote a")
        (ctx.out / "a.txt").write_text(f"a{self.params(ctx.recipe)['knob']}")
        return {"chars": 2}


class StepB(_Base):
    name = "b"
    consumes = ("art_a",)
    produces = "art_b"

    def run(self, ctx: StepContext) -> dict:
        _misbehave(ctx, self.name)
        a = (ctx.inputs["art_a"] / "a.txt").read_text()
        sub = ctx.out / "sub"
        sub.mkdir()
        # knob 'b' only changes whether b's output depends on a's content: used to show that an
        # identical output of a forced step does not rerun downstream steps
        (sub / "b.txt").write_text(f"{a}+b{self.params(ctx.recipe)['knob']}")
        return {"len": len(a)}


class StepC(_Base):
    name = "c"
    consumes = ("art_b",)
    optional = ("art_a",)
    produces = "art_c"

    def run(self, ctx: StepContext) -> dict:
        _misbehave(ctx, self.name)
        b = (ctx.inputs["art_b"] / "sub" / "b.txt").read_text()
        has_a = "art_a" in ctx.inputs
        (ctx.out / "c.txt").write_text(f"{b}+c{self.params(ctx.recipe)['knob']} a={has_a}")
        return {"has_a": has_a}


class StepOptA(_Base):
    """Uses art_a when an earlier step produces it."""
    name = "opt"
    optional = ("art_a",)
    produces = "art_opt"

    def run(self, ctx: StepContext) -> dict:
        (ctx.out / "opt.txt").write_text(str(sorted(ctx.inputs)))
        return {"inputs": sorted(ctx.inputs)}


# ----------------------------------------------------------------------------- isolated steps

class IsoKill(Step):
    """Writes half its output, then SIGKILLs itself the first time (sentinel file absent)."""
    name = "iso_kill"
    consumes = ("art_a",)
    produces = "art_kill"

    def params(self, recipe: Any) -> dict:
        return {}

    def run(self, ctx: StepContext) -> dict:
        (ctx.out / "partial.bin").write_bytes(b"x" * 1000)
        sentinel = Path(ctx.recipe.behaviour["sentinel"])
        if not sentinel.exists():
            sentinel.write_text("killed once")
            os.kill(os.getpid(), signal.SIGKILL)
        (ctx.out / "done.txt").write_text("done")
        return {"pid": os.getpid()}


class IsoRecipeError(Step):
    name = "iso_recipe_error"
    produces = "art_err"

    def params(self, recipe: Any) -> dict:
        return {}

    def run(self, ctx: StepContext) -> None:
        (ctx.out / "partial.txt").write_text("half")
        raise RecipeError(["recipe.yaml:3: compression.bits must be 4 or 8"],
                          fix="set compression.bits: 4")


class IsoBoom(Step):
    name = "iso_boom"
    produces = "art_boom"

    def params(self, recipe: Any) -> dict:
        return {}

    def run(self, ctx: StepContext) -> None:
        raise ValueError("kaboom in child")


ALLOC_BYTES = 200 * 1024 * 1024


class IsoAlloc(Step):
    """Touches ~200 MiB, returns metrics that depend on the child's pid (proves it ran there)."""
    name = "iso_alloc"
    produces = "art_alloc"

    def params(self, recipe: Any) -> dict:
        return {"bytes": ALLOC_BYTES}

    def run(self, ctx: StepContext) -> dict:
        block = b"\x01" * ALLOC_BYTES  # written, so resident
        (ctx.out / "size.txt").write_text(str(len(block)))
        del block
        return {"pid": os.getpid(), "parent_pid": os.getppid()}


class IsoNoop(Step):
    """Allocates nothing: the baseline peak RSS of an isolated step in this session."""
    name = "iso_noop"
    produces = "art_noop"

    def params(self, recipe: Any) -> dict:
        return {}

    def run(self, ctx: StepContext) -> None:
        return None


class IsoSleep(Step):
    """Writes its pid to out/started, then sleeps (to be interrupted)."""
    name = "iso_sleep"
    produces = "art_sleep"

    def params(self, recipe: Any) -> dict:
        return {}

    def run(self, ctx: StepContext) -> None:
        import time
        (ctx.out / "started").write_text(str(os.getpid()))
        time.sleep(60)


class IsoEnvAtRun(Step):
    """Reports an ovexport variable read when the step runs, and its parent (the fork server that forked it)."""
    name = "iso_env_at_run"
    produces = "art_env_at_run"

    def params(self, recipe: Any) -> dict:
        return {}

    def run(self, ctx: StepContext) -> dict:
        return {"value": os.environ.get("OVEXPORT_TEST_AT_RUN", "unset"), "server": os.getppid()}


class IsoCycle(Step):
    """Drops a reference cycle made in the step and frees it with ``release_memory``; reports whether it was freed
    and how many inherited objects the child froze."""
    name = "iso_cycle"
    produces = "art_cycle"

    def params(self, recipe: Any) -> dict:
        return {}

    def run(self, ctx: StepContext) -> dict:
        import gc
        import weakref

        from ovexport.util.memory import release_memory

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        del a, b
        release_memory()
        return {"freed": alive() is None, "frozen": gc.get_freeze_count()}


class IsoEnvAtImport(Step):
    """Reports a module's import-time reading of the environment, and whether the fork server preloaded it."""
    name = "iso_env_at_import"
    produces = "art_env_at_import"
    preload = ("env_at_import",)

    def params(self, recipe: Any) -> dict:
        return {}

    def run(self, ctx: StepContext) -> dict:
        preloaded = "env_at_import" in sys.modules
        import env_at_import
        return {"value": env_at_import.VALUE, "preloaded": preloaded}
