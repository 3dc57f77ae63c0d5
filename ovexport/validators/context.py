"""What every check runs against: the checkpoint's PyTorch reference, the IR directory, the pinned OpenVINO
configuration and a seeded RNG.

Memory discipline (so that the full-size model can be validated part by part): a check computes its
PyTorch outputs first inside ``with ctx.torch_part("llm")`` (the part is released when the block ends),
then compiles the IR it needs inside ``with ctx.compiled(...)`` (the compiled model is dropped when the
block ends). PyTorch and OpenVINO copies of the same part are never alive together, and only one part of
each is alive at a time.
"""
from __future__ import annotations

import contextlib
import gc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.text import Text

from ovexport.util.memory import release_memory
from ovexport.bundle.layout import ir_files
from ovexport.errors import BundleError
from ovexport.models.interface import ModelFamily, Reference, RuntimeAdapter
from ovexport.models.registry import family_for
from ovexport.parts import REFERENCE_PARTS, family_ir_files, ir_files_of


class ValidationContext:
    """``ValidationContext(ckpt, ir_dir, spec, console)``; ``spec`` is a recipe ``ValidationSpec``."""

    def __init__(self, ckpt: Path, ir_dir: Path, spec: Any, console: Console | None = None,
                 reference_dtype: Any = None, progress: Any = None, reference_cache: Any = None):
        self.ckpt = Path(ckpt)
        self.progress = progress  # a StepContext.progress task (describe(text)), or None
        self.check_name = ""
        self.reference_cache = reference_cache    # an ``evaluation.ReferenceCache`` or None
        self._ckpt_digest: str | None = None
        self.ir_dir = Path(ir_dir)
        self.spec = spec
        self.console = console if console is not None else Console(stderr=True)
        self.family: ModelFamily = family_for(self.ckpt)
        self.rng = np.random.default_rng(spec.seed)
        self._reference_dtype = reference_dtype
        self._reference = None
        self._adapter = None
        self._core = None

    # ------------------------------------------------------------------ OpenVINO
    @property
    def ov_config(self) -> dict[str, str]:
        """The pinned properties (INFERENCE_PRECISION_HINT, KV_CACHE_PRECISION) every IR is compiled with."""
        return dict(self.spec.ov_config())

    @property
    def device(self) -> str:
        return self.spec.device

    @property
    def core(self):
        if self._core is None:
            import openvino as ov
            self._core = ov.Core()
        return self._core

    def ir_path(self, xml_name: str) -> Path:
        xml, binf = (self.ir_dir / f for f in ir_files(xml_name))
        for f in (xml, binf):
            if not f.is_file():
                raise BundleError(f"{self.ir_dir} has no {f.name}",
                                  fix="validate a directory holding the three IRs (the compress step's output "
                                      "or a bundle)")
        return xml

    def check_irs(self) -> None:
        for name in family_ir_files(self.family):
            self.ir_path(name)

    def compile(self, xml_name: str):
        """Compile one IR on ``spec.device`` with the pinned config (caller drops it when done)."""
        self.subtask(f"compiling {xml_name}")
        release_memory()  # a check's PyTorch part, freed when its last local went, back to the system first
        model = self.core.compile_model(self.ir_path(xml_name), self.device, self.ov_config)
        self.subtask(f"running {xml_name}")
        return model

    @contextlib.contextmanager
    def compiled(self, xml_name: str) -> Iterator[Any]:
        model = self.compile(xml_name)
        try:
            yield model
        finally:
            del model
            release_memory()

    @contextlib.contextmanager
    def image_encoder(self) -> Iterator[Any]:
        """The image encoder part's IR(s), compiled, behind the family's encoder (``runtime.image_encoder``):
        ``encode(inputs of one ImageBatch) -> [N, Q, D]``, fed what the bundle's runtimes feed it."""
        from ovexport.runtime.image_encoder import image_encoder_for, requests_infer

        models = {xml: self.compile(xml) for xml in ir_files_of(self.family, "image_encoder")}
        requests = {xml: m.create_infer_request() for xml, m in models.items()}
        try:
            yield image_encoder_for(self.family, self.reference.config, requests_infer(requests))
        finally:
            # emptied, not only unbound: the yielded encoder's infer still holds the dict after the block
            requests.clear()
            models.clear()
            release_memory()

    # ------------------------------------------------------------------ PyTorch reference
    @property
    def reference(self) -> Reference:
        """The family's PyTorch reference (fp32 unless ``reference_dtype`` says otherwise); parts load lazily."""
        if self._reference is None:
            kw = {} if self._reference_dtype is None else {"dtype": self._reference_dtype}
            self._reference = self.family.reference(self.ckpt, **kw)
        return self._reference

    @contextlib.contextmanager
    def torch_part(self, *parts: str) -> Iterator[Any]:
        """``with ctx.torch_part("llm"): ...`` then the part is released (``reference.release``)."""
        self.subtask(f"PyTorch reference ({', '.join(parts)})")
        ref = self.reference
        try:
            yield ref
        finally:
            for p in parts:
                ref.release(p)
            release_memory()

    def cached_reference(self, check: str, compute: Callable[[], dict], **params: Any) -> dict:
        """``compute()`` (a check's PyTorch outputs, a flat dict of arrays and JSON values), or the same outputs
        read from the reference cache: validating another variant of this checkpoint reuses them. The key holds
        the checkpoint's content, the seed, ``params``, the reference dtype and the code of the check and model."""
        if self.reference_cache is None:
            return compute()
        from ovexport.engine.fingerprint import digest_dir
        from ovexport.models.registry import code_digest_of

        if self._ckpt_digest is None:
            self._ckpt_digest = digest_dir(self.ckpt)[0]
        doc = {"what": "validation", "check": check, "checkpoint": self._ckpt_digest, "seed": int(self.spec.seed),
               "params": params, "dtype": str(self._reference_dtype or "fp32"),
               "code": code_digest_of(f"ovexport.validators.{check}", roles=("reference", "runtime"))}
        hits = self.reference_cache.hits
        out = self.reference_cache.get_or_compute(doc, compute)
        if self.reference_cache.hits > hits:
            self.log(f"{check}: PyTorch outputs read from the reference cache")
        return out

    @property
    def adapter(self) -> RuntimeAdapter:
        """The family's runtime adapter read from the checkpoint (prompting, embedding scale, EOS ids): the
        same object the bundle runtime uses."""
        if self._adapter is None:
            self._adapter = self.family.runtime(self.ckpt)
        return self._adapter

    # ------------------------------------------------------------------ misc
    def rng_for(self, name: str) -> np.random.Generator:
        """A generator seeded by (spec.seed, name): a check's inputs do not depend on which checks ran before."""
        return np.random.default_rng([self.spec.seed, zlib.crc32(name.encode())])

    def log(self, msg: str) -> None:
        self.console.print(Text(f"  {msg}", style="dim"), highlight=False)

    def subtask(self, text: str) -> None:
        """Show what the current check is doing now (on a terminal, next to the step's elapsed time)."""
        if getattr(self.progress, "describe", None) is not None:
            self.progress.describe(f"{self.check_name}: {text}" if self.check_name else text)

    def close(self) -> None:
        if self._reference is not None:
            for p in REFERENCE_PARTS:
                self._reference.release(p)
        self._reference = None
        self._adapter = None
        self._core = None
        gc.collect()
