"""What the steps share: running a model family's code, and fingerprinting the code they really run."""
from __future__ import annotations

from typing import ClassVar


class RunsFamilyCode:
    """Mixin for a step that runs a model family's code: the step fork server also imports what the
    registered families preload (``ModelFamily.preload``), and ``code()`` digests the step module's import
    closure plus the family code behind ``code_roles`` (``ModelFamily.entry_modules``), which the step reaches
    through the registry at run time rather than by an import."""

    code_roles: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def preload_modules(cls) -> tuple[str, ...]:
        from ovexport.models.registry import preload_modules
        return (*super().preload_modules(), *preload_modules())  # type: ignore[misc]

    def code(self) -> str:
        from ovexport.models.registry import code_digest_of
        return code_digest_of(type(self).__module__, roles=self.code_roles)
