"""Step base class, the context a step runs in, and the step registry.

A step consumes named artifacts (directories), produces exactly one, and declares the parameters and
tool versions its output depends on (they are fingerprinted). The engine knows nothing about what a
step does.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn)
from rich.text import Text

from ..errors import PlanError
from .fingerprint import normalise


def work_dir(recipe: Any) -> Path:
    """``<output.root>/.work/<recipe.name>`` as an absolute path: where a recipe's steps write."""
    return Path(os.path.abspath(Path(recipe.output.root).expanduser())) / ".work" / recipe.name


@dataclass
class StepContext:
    """What a running step gets. ``out`` is a temporary directory renamed into place on success."""

    recipe: Any
    inputs: dict[str, Path]
    out: Path
    work: Path
    console: Console = field(default_factory=Console)
    step_name: str = ""
    _progress: Progress | None = field(default=None, init=False, repr=False)

    @contextlib.contextmanager
    def progress(self, description: str, total: float | None = None) -> Iterator["ProgressTask"]:
        """A rich progress bar; yields a ``ProgressTask``: ``advance(n=1)``, and ``advance.describe(text)``
        to show the current sub-task next to the description. ``total=None`` shows a spinner.

        Only one live display exists at a time: a nested call adds a task to the live one. Do not
        hold it while a library that draws its own progress (NNCF) runs. Nothing is drawn when
        the console is not a terminal.
        """
        if not self.console.is_terminal or self.console.is_dumb_terminal:
            yield ProgressTask(None, None, description)  # logs and pipes get no progress bars
            return
        if self._progress is not None:  # nested: share the live display
            prog = self._progress
            task = prog.add_task(description, total=total)
            try:
                yield ProgressTask(prog, task, description)
            finally:
                prog.remove_task(task)
            return
        prog = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=self.console,
                        transient=True)
        task = prog.add_task(description, total=total)
        self._progress = prog
        try:
            with prog:
                yield ProgressTask(prog, task, description)
        finally:
            self._progress = None

    def log(self, msg: str) -> None:
        """One indented line under the step's ▶ line (printed above a live progress bar), also appended to
        the step's log file."""
        self.console.print(Text(f"  {msg}", style="dim"), highlight=False)
        if self.step_name:
            from .step_log import append_line
            append_line(self.log_path, f"{time.strftime('%H:%M:%S')} {msg}")

    @property
    def log_path(self) -> Path:
        """``<work>/logs/<step>.log``: the step's ``log`` lines and the third-party warnings it raised."""
        from .step_log import step_log_path
        return step_log_path(self.work, self.step_name)

    @contextlib.contextmanager
    def capture_warnings(self) -> Iterator[Path]:
        """While the step runs: known third-party warnings go to ``log_path``, not the screen (engine/step_log.py)."""
        from .step_log import known_warnings_to_log, start_log
        start_log(self.log_path, self.step_name)
        with known_warnings_to_log(self.log_path) as path:
            yield path


class ProgressTask:
    """What ``StepContext.progress`` yields: ``advance(n=1)`` moves the bar, ``describe(text)`` shows the
    current sub-task ("llm: compiling openvino_language_model.xml"). Both do nothing off a terminal."""

    def __init__(self, progress: Progress | None, task: Any, description: str):
        self._progress, self._task, self.description = progress, task, description

    def __call__(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def describe(self, subtask: str) -> None:
        if self._progress is not None:
            text = f"{self.description}: {subtask}" if subtask else self.description
            self._progress.update(self._task, description=text)


class Step:
    """Subclass per step and register it with :func:`register_step`.

    Class attributes: ``name``, ``consumes`` (required artifacts), ``optional`` (artifacts used when
    an earlier step of the recipe produces them), ``produces`` (exactly one artifact), ``isolate``
    (run in a fresh subprocess, ``isolation.py``: memory isolation and exact peak RSS; the class must then be
    importable at module level), ``run_cache`` (False for a step whose output is not a pure function
    of its fingerprint, e.g. one that reads the lock or stamps the time: it is never shared through
    the run cache).
    """

    name: ClassVar[str]
    consumes: ClassVar[tuple[str, ...]] = ()
    optional: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[str]
    isolate: ClassVar[bool] = True
    run_cache: ClassVar[bool] = True
    # modules an isolated step imports anyway (e.g. "torch", "openvino"): imported once in the fork
    # server that isolated steps are forked from, instead of once per step (the server is restarted when
    # the runner's environment changes, so a module may read the environment at import time).
    preload: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def preload_modules(cls) -> tuple[str, ...]:
        """What the fork server imports for this step: ``preload`` and the step's own module (importing it in
        each step's process costs seconds when it pulls in the exporter, NNCF or the validators)."""
        return (*cls.preload, cls.__module__)

    def params(self, recipe: Any) -> dict:
        """JSON-serialisable resolved parameters that affect the output (fingerprinted).

        Must be overridden (return ``{}`` explicitly if nothing in the recipe affects the output)."""
        raise NotImplementedError(f"step {self.name!r} must define params(recipe)")

    def tool_versions(self) -> dict[str, str]:
        """Versions of the tools the output depends on, e.g. ``{"openvino": ov.__version__}``."""
        return {}

    def output_path(self, recipe: Any, work: Path) -> Path:
        return work / self.produces

    def run(self, ctx: StepContext) -> dict | None:
        """Fill ``ctx.out``; return JSON-serialisable metrics (stored in the lock) or None."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<step {self.name}>"


def checked_metrics(name: str, metrics: Any) -> dict | None:
    """What step ``name`` returned from ``run``, as stored in the lock; TypeError when it is not a dict of
    JSON-serialisable metrics (or None)."""
    if metrics is None:
        return None
    if not isinstance(metrics, dict):
        raise TypeError(f"step '{name}' returned {type(metrics).__name__}, expected a dict of "
                        f"metrics or None")
    try:
        return normalise(metrics)
    except (TypeError, ValueError) as e:
        raise TypeError(f"step '{name}' returned metrics that are not JSON-serialisable "
                        f"({e})") from e


class StepRegistry:
    """Step classes by name. ``modules`` register steps when imported: they are imported on the first question
    asked of the registry (not at import, like the model-family registry), so whoever asks for the steps (the
    recipe schema, the planner) needs no import of the package that defines them."""

    def __init__(self, modules: tuple[str, ...] = ()) -> None:
        self._classes: dict[str, type[Step]] = {}
        self._modules = modules
        self._loaded = not modules

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True      # first: the modules' own registrations must not load again
            for module in self._modules:
                importlib.import_module(module)

    def register(self, cls: type[Step]) -> type[Step]:
        """Register a Step subclass under ``cls.name``; usable as a class decorator."""
        if not (isinstance(cls, type) and issubclass(cls, Step)):
            raise TypeError(f"{cls!r} is not a Step subclass")
        name = getattr(cls, "name", None)
        produces = getattr(cls, "produces", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__qualname__} has no 'name'")
        if not isinstance(produces, str) or not produces:
            raise TypeError(f"step {name!r} must produce exactly one artifact (a str 'produces')")
        for attr in ("consumes", "optional"):
            v = getattr(cls, attr)
            if isinstance(v, str) or not all(isinstance(a, str) for a in v):
                raise TypeError(f"step {name!r}: '{attr}' must be a tuple of artifact names")
        prev = self._classes.get(name)
        if prev is not None and (prev.__module__, prev.__qualname__) != (cls.__module__,
                                                                          cls.__qualname__):
            raise ValueError(f"step {name!r} is already registered by "
                             f"{prev.__module__}.{prev.__qualname__}")
        self._classes[name] = cls
        return cls

    def step_class(self, name: str) -> type[Step]:
        self._load()
        try:
            return self._classes[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise PlanError(f"unknown step '{name}'", fix=f"use one of: {known}") from None

    def get(self, name: str) -> Step:
        return self.step_class(name)()

    def names(self) -> list[str]:
        self._load()
        return list(self._classes)

    def pipeline_order(self) -> list[str]:
        """Every registered step, each after the steps producing what it consumes (or optionally uses).

        Among the steps ready to run, the one consuming the most recently produced artifact goes first (a chain
        such as convert_llm -> make_stateful stays together), then registration order."""
        self._load()
        produced_at: dict[str, int] = {}
        todo = list(self._classes)
        order: list[str] = []
        producers = {c.produces for c in self._classes.values()}
        while todo:
            ready = []
            for i, name in enumerate(todo):
                cls = self._classes[name]
                needs = [a for a in (*cls.consumes, *cls.optional) if a in producers]
                if all(a in produced_at for a in needs):
                    ready.append((-max((produced_at[a] for a in needs), default=-1), i, name))
            if not ready:
                raise PlanError(f"steps {', '.join(todo)} depend on each other in a cycle",
                                fix="make one of them consume an artifact produced earlier")
            name = min(ready)[2]
            todo.remove(name)
            produced_at[self._classes[name].produces] = len(order)
            order.append(name)
        return order

    def producers_of(self, artifact: str) -> list[str]:
        self._load()
        return [n for n, c in self._classes.items() if c.produces == artifact]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(self._classes)

    def __len__(self) -> int:
        self._load()
        return len(self._classes)


# the built-in steps (``ovexport/steps/``) register themselves in the global registry when imported
REGISTRY = StepRegistry(modules=("ovexport.steps",))
register_step = REGISTRY.register
get_step = REGISTRY.get


def all_steps() -> dict[str, type[Step]]:
    """name -> Step class of every step registered in the global registry."""
    return {n: REGISTRY.step_class(n) for n in REGISTRY.names()}
