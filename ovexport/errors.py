"""One error type for everything a user can get wrong: it prints as one line with the fix."""
from __future__ import annotations


class OvexportError(Exception):
    """A problem the user can fix. ``str()`` is a single line: what is wrong, then how to fix it."""

    exit_code = 2

    def __init__(self, what: str, fix: str | None = None):
        self.what = what
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.what} (fix: {self.fix})" if self.fix else self.what


class RecipeError(OvexportError):
    """A recipe (or pipeline file) is invalid. Carries every problem found, each as 'file:line: message'."""

    def __init__(self, problems: list[str], fix: str | None = None):
        self.problems = list(problems)
        what = "; ".join(self.problems) if len(self.problems) == 1 else (
            f"{len(self.problems)} problems: " + "; ".join(self.problems))
        super().__init__(what, fix)


class CheckpointError(OvexportError):
    """A checkpoint is missing a file, a tensor, or has a tensor of the wrong shape."""


class SourceError(OvexportError):
    """The checkpoint source cannot be reached or resolved (Hub unreachable, bad revision...)."""


class PlanError(OvexportError):
    """The steps of a recipe cannot run in this order (a step needs an artifact nothing produces)."""


class InputError(OvexportError):
    """A runtime input is unusable (unreadable image, bad bundle path...)."""


class ValidationFailed(OvexportError):
    """A numerical-parity gate failed."""

    exit_code = 3


class BundleError(OvexportError):
    """A bundle is incomplete or its files do not match manifest.json."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """A third-party exception's message on one line, cut to ``limit`` characters (for an ``OvexportError``)."""
    return " ".join(str(exc).split())[:limit]
