"""Convert one PyTorch part to OpenVINO and save it, keeping 16-bit weights 16-bit all the way.

16-bit weights are handed to OpenVINO's own 16-bit tracing patch (Linear/Embedding become
extension ops whose constants stay fp16/bf16 with fp32 activations), so converting the 2.4B LLM
needs its bf16 size in memory, not an fp32 copy.
"""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from pathlib import Path

from typing import TYPE_CHECKING

from .spec import PartSpec

if TYPE_CHECKING:
    import torch

# recipe weight_dtype -> torch dtype name (torch is imported only where a part is converted)
WEIGHT_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def torch_dtype(weight_dtype: str) -> "torch.dtype":
    import torch

    return getattr(torch, WEIGHT_DTYPES[weight_dtype])


@contextlib.contextmanager
def sixteen_bit_tracing(module: "torch.nn.Module") -> Iterator["torch.nn.Module"]:
    """Scope OpenVINO's 16-bit tracing patch to one conversion, and undo the torch-function patches after."""
    from openvino.frontend.pytorch import patch_model

    make_traceable = getattr(patch_model, "__make_16bit_traceable")
    unpatch_fns = getattr(patch_model, "_unpatch_torch_functions", None)
    make_traceable(module)
    try:
        yield module
    finally:
        if unpatch_fns is not None:
            unpatch_fns()
        patch_model.unpatch_model(module, "_openvino_module_extension_patch_orig_forward")


def _name_ports(ov_model, spec: PartSpec) -> None:
    if len(ov_model.inputs) != len(spec.input_names) or len(ov_model.outputs) != len(spec.output_names):
        raise RuntimeError(f"{spec.name}: traced {len(ov_model.inputs)} inputs/{len(ov_model.outputs)} outputs, "
                           f"expected {len(spec.input_names)}/{len(spec.output_names)}")
    for port, name in zip(ov_model.inputs, spec.input_names):
        port.get_tensor().set_names({name})
    for port, name in zip(ov_model.outputs, spec.output_names):
        port.get_tensor().set_names({name})


def _trace_and_convert(module: "torch.nn.Module", example_input):
    """``ov.convert_model`` through a TorchScript decoder that skips torch.jit's trace check.

    The check re-runs the model twice to compare traces: 20 of the 33 s of converting the full-size
    image encoder. The parity validators compare the IR with PyTorch anyway, on more inputs.
    """
    import openvino as ov
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    decoder = TorchScriptPythonDecoder(module, example_input=example_input, trace_kwargs={"check_trace": False})
    return ov.convert_model(decoder, example_input=example_input)


def convert_part(spec: PartSpec, weight_dtype: str):
    """Load the part, trace it and return the ``ov.Model`` (PyTorch weights released before returning)."""
    import openvino as ov
    import torch

    module = spec.load()
    dtype = torch_dtype(weight_dtype)
    for p in module.parameters():
        if p.dtype.is_floating_point and p.dtype != dtype:
            p.data = p.data.to(dtype)
    with torch.no_grad():
        if dtype == torch.float32:
            ov_model = _trace_and_convert(module, spec.example_input)
        else:
            with sixteen_bit_tracing(module):
                ov_model = _trace_and_convert(module, spec.example_input)
    _name_ports(ov_model, spec)
    del module
    gc.collect()
    return ov_model


def save_ir(ov_model, out_dir: Path, filename: str) -> Path:
    """Save without re-compressing: the weights keep the dtype the conversion gave them."""
    import openvino as ov

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / filename
    ov.save_model(ov_model, path, compress_to_fp16=False)
    return path


def export_irs(ckpt: Path, out: Path | Callable[[str], Path], weight_dtype: str = "fp32",
               compression: dict | None = None, trace_image_size: int | None = None) -> dict[str, Path]:
    """Every IR of ``ckpt`` (LLM stateful), each part compressed with ``compression[part]`` (a policy for
    ``compress_model``) when given, into ``out`` (or ``out(part)``). Returns {part: its directory}. One process,
    no fingerprints: tests and benchmarks; ``ovexport run`` does this step by step. ``trace_image_size``: the
    family's own when None."""
    import warnings

    from ovexport.models.registry import default_trace_size, family_for

    from .compress import compress_model
    from .spec import as_specs
    from .stateful import make_stateful

    family = family_for(ckpt)
    size = trace_image_size if trace_image_size is not None else default_trace_size(family)
    specs = family.part_specs(ckpt, weight_dtype=weight_dtype, trace_image_size=size)
    dirs: dict[str, Path] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace deprecation and TracerWarnings
        for part, value in specs.items():
            dirs[part] = Path(out(part) if callable(out) else out)
            for spec in as_specs(value):
                model = convert_part(spec, weight_dtype)
                if spec.stateful is not None:
                    make_stateful(model, spec.stateful)
                if compression and compression.get(part):
                    model = compress_model(model, compression[part])
                save_ir(model, dirs[part], spec.filename)
                del model
    return dirs
