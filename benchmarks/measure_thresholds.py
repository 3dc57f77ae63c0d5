#!/usr/bin/env python
"""Measure the validation metrics of tiny synthetic exports at several precisions, to choose thresholds.

For each seed: write a tiny synthetic checkpoint, export the three IRs as fp32, fp16, int8 (LLM + image
encoder int8_asym, like recipes/tiny-minicpmv2-int8.yaml) and int4 (LLM int4_sym, group 16, ratio 0.6, like
recipes/tiny-minicpmv2-int4.yaml), run every check with NO gate (all thresholds null) and print one row per
(precision, seed) plus the worst value over seeds. Optional extra rows show what happens when the runtime
precision is not pinned (fp32 IR computed in bf16, or with a u8 KV cache).

    python benchmarks/measure_thresholds.py                      # seeds 0 1 2, into a temporary directory
    python benchmarks/measure_thresholds.py --seeds 0 --json out.json --runtime-variants
    python benchmarks/measure_thresholds.py --checkpoint path/to/MiniCPM-V-2 --seeds 0 --workdir /big/disk
    python benchmarks/measure_thresholds.py --recipe recipes/tiny-minicpmv2-int4.yaml   # a recipe's own gates

Takes about 1.5 minutes per seed on 2 cores (tiny). With ``--checkpoint`` the given checkpoint is exported
instead (seeds then only vary the validation inputs; int4 uses group size 64 as the full-size recipe).

With ``--recipe`` (a recipe with a ``synthetic://`` source) the recipe itself is measured: for each seed its
source at that seed (``synthetic://tiny-trained?seed=N`` trains, or reads the cached, checkpoint), its export
dtype and compression policies, its validation settings at that seed with no gate; then, for each gate of the
recipe, the worst value over the seeds and the gate the margin rule of docs/validation.md gives:
max metrics (max_abs_diff, max_kl): worst x 1.5; cosines: 1 - 1.5 x (1 - worst); agreements (top-1, token):
worst - 0.15. The parity gates of a part exported fp32 and not compressed are kept (exact results, and float-rounding bounds
with the margins docs/validation.md explains).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

# (check, metric, worst = "max" | "min")
COLUMNS = [
    ("text_embeddings", "max_abs_diff", "max"),
    ("image_encoder", "max_abs_diff", "max"),
    ("image_encoder", "min_cosine", "min"),
    ("llm", "max_abs_diff", "max"),
    ("llm", "min_cosine", "min"),
    ("llm", "top1_agreement", "min"),
    ("llm", "max_kl", "max"),
    ("llm", "reset_max_abs_diff", "max"),
    ("end_to_end", "token_agreement", "min"),
    ("end_to_end", "first_divergence", "min"),
]

PRECISIONS = {
    # name -> (weight_dtype, {part: compression policy})
    "fp32": ("fp32", {}),
    "fp16": ("fp16", {}),
    "int8": ("fp32", {"llm": {"mode": "int8_asym"}, "image_encoder": {"mode": "int8_asym"}}),
    "int4": ("fp32", {"llm": {"mode": "int4_sym", "group_size": 16, "ratio": 0.6}}),
}


def build_irs(ckpt: Path, out: Path, weight_dtype: str = "fp32", compression: dict | None = None) -> Path:
    """The three IRs of ``ckpt`` in ``out`` (LLM stateful), parts compressed per ``compression``."""
    from ovexport.exporter.convert import export_irs

    export_irs(ckpt, out, weight_dtype, compression)
    return out


def unguarded_spec(**kw):
    from ovexport.recipe.schema import ValidationSpec

    none = {"text_embeddings": {"max_abs_diff": None},
            "image_encoder": {"max_abs_diff": None, "min_cosine": None},
            "llm": {"max_abs_diff": None, "min_cosine": None, "min_top1_agreement": None, "max_kl": None},
            "end_to_end": {"min_token_agreement": None}}
    return ValidationSpec.model_validate({**kw, "thresholds": none})


# recipe threshold -> (check, metric it gates, "max" | "min")
GATES = {
    "text_embeddings.max_abs_diff": ("text_embeddings", "max_abs_diff", "max"),
    "image_encoder.max_abs_diff": ("image_encoder", "max_abs_diff", "max"),
    "image_encoder.min_cosine": ("image_encoder", "min_cosine", "min"),
    "llm.max_abs_diff": ("llm", "max_abs_diff", "max"),
    "llm.min_cosine": ("llm", "min_cosine", "min"),
    "llm.min_top1_agreement": ("llm", "top1_agreement", "min"),
    "llm.max_kl": ("llm", "max_kl", "max"),
    "end_to_end.min_token_agreement": ("end_to_end", "token_agreement", "min"),
}
KL_FACTOR = 1.5         # max metrics and the distance 1 - cosine: worst x 1.5
AGREEMENT_MARGIN = 0.15  # agreements: worst - 0.15 (more than one token of the 8 generated end to end)


def _round_up(x: float, digits: int = 2) -> float:
    """x rounded up to ``digits`` significant digits (a max gate never tightens by rounding)."""
    import math
    if x <= 0:
        return 0.0
    e = math.floor(math.log10(x)) - digits + 1
    return math.ceil(x / 10 ** e - 1e-9) * 10 ** e


def margin_gate(metric: str, kind: str, worst: float) -> tuple[float | None, str]:
    """(the gate the margin rule gives for ``worst``, how): None when no gate can be set below it."""
    if kind == "max":
        return float(f"{_round_up(worst * KL_FACTOR):.3g}"), f"worst x {KL_FACTOR}"
    if "cosine" in metric:
        return float(f"{1.0 - _round_up((1.0 - worst) * KL_FACTOR):.6g}"), f"1 - {KL_FACTOR} x (1 - worst)"
    gate = round(worst - AGREEMENT_MARGIN - 0.005, 2)  # rounded down to 2 decimals
    return (gate if gate > 0 else None), f"worst - {AGREEMENT_MARGIN}"


def recipe_setup(path: Path):
    """(recipe, synthetic size, export dtype, {part: policy}) of a recipe measured with ``--recipe``."""
    from ovexport.recipe.load import load_recipe

    recipe = load_recipe(path)
    src = recipe.source_spec
    if src.kind != "synthetic":
        raise SystemExit(f"--recipe measures recipes with a synthetic:// source; {path} reads {recipe.source}")
    comp = {k: v for k, v in recipe.compression.parts().items() if v is not None}
    if any(p.data_aware for p in comp.values()):
        raise SystemExit(f"{path}: data-aware compression is not measured by this script")
    return recipe, src.size, recipe.export.weight_dtype, comp


def print_gates(console, recipe, rows: list[tuple[str, int, dict]]) -> None:
    """Per gate of the recipe: its value now, the measured values per seed, the worst, the margin-rule gate."""
    table = Table(title=f"{recipe.name}: gates from the worst of seeds {' '.join(str(s) for _, s, _ in rows)}",
                  title_justify="left")
    for col in ("gate", "now", "per seed", "worst", "rule", "gate by the rule"):
        table.add_column(col, justify="left" if col in ("gate", "rule") else "right")
    policies = recipe.compression.parts()
    for name, (check, metric, kind) in GATES.items():
        block, field = name.split(".")
        now = getattr(getattr(recipe.validation.thresholds, block), field)
        vals = [v.get((check, metric)) for _, _, v in rows]
        vals = [float(v) if isinstance(v, (int, float)) else float("nan") for v in vals]
        worst = (max if kind == "max" else min)(vals)
        compressed = any(policies.values()) if check == "end_to_end" else policies.get(check) is not None
        if not compressed and recipe.export.weight_dtype == "fp32":  # parity gates: see docs/validation.md
            gate, how = now, "fp32 parity: kept"
        else:
            gate, how = margin_gate(metric, kind, worst)
        table.add_row(name, "null" if now is None else f"{now:.6g}", " ".join(f"{v:.4g}" for v in vals),
                      f"{worst:.6g}", how, "-" if gate is None else f"{gate:.6g}")
    console.print(table)


def row_of(report: dict) -> dict[tuple[str, str], float]:
    out = {}
    for c in report["checks"]:
        for m, v in c["metrics"].items():
            out[(c["name"], m)] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    ap.add_argument("--runtime-variants", action="store_true",
                    help="also run the fp32 IRs with INFERENCE_PRECISION_HINT=bf16 and with KV_CACHE_PRECISION=u8")
    ap.add_argument("--workdir", type=Path, default=None, help="keep checkpoints and IRs here")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="measure this checkpoint instead of tiny synthetic ones")
    ap.add_argument("--recipe", type=Path, default=None,
                    help="measure this recipe (synthetic source) at each seed and print its gates by the margin rule")
    ap.add_argument("--json", type=Path, default=None, help="write every row as JSON here")
    args = ap.parse_args(argv)
    recipe = None
    if args.recipe is not None:
        recipe, size, dtype, comp = recipe_setup(args.recipe)
        PRECISIONS[recipe.name] = (dtype, comp)
        args.precisions = [recipe.name]

    import warnings
    warnings.filterwarnings("ignore")
    from ovexport.models.registry import write_synthetic
    from ovexport.validators.run_checks import run_validation

    console = Console(width=220)
    quiet = Console(file=io.StringIO())
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="ovexport-measure-")
        work = Path(tmp.name)
    else:
        work = args.workdir
    rows: list[tuple[str, int, dict]] = []
    t_all = time.monotonic()
    for seed in args.seeds:
        if args.checkpoint is not None:
            ckpt, ir_tag = args.checkpoint, "given"
        else:
            tiny = "tiny" if recipe is None else size
            ckpt, ir_tag = work / f"ckpt-{tiny}-seed{seed}", f"{tiny}-seed{seed}"
            if not (ckpt / "config.json").is_file():
                write_synthetic(tiny, ckpt, seed=seed)
        variants: list[tuple[str, str, dict]] = [(p, p, {}) for p in args.precisions]
        if args.runtime_variants:
            variants += [("fp32 IR, bf16 compute", "fp32", {"inference_precision": "bf16"}),
                         ("fp32 IR, u8 KV cache", "fp32", {"kv_cache_precision": "u8"})]
        for label, prec, spec_kw in variants:
            ir = work / f"ir-{ir_tag}-{prec}"
            if not (ir / "openvino_language_model.xml").is_file():
                dtype, comp = PRECISIONS[prec]
                if args.checkpoint is not None and prec == "int4":
                    comp = {"llm": {**comp["llm"], "group_size": 64}}
                t = time.monotonic()
                build_irs(ckpt, ir, dtype, comp)
                console.print(f"[dim]seed {seed}: built {prec} IRs in {time.monotonic() - t:.1f}s[/dim]")
            t = time.monotonic()
            if recipe is not None:  # the recipe's validation settings (precision hints, decode/generate lengths)
                spec_kw = {k: v for k, v in recipe.validation.model_dump().items() if k not in ("thresholds", "seed")}
            report = run_validation(ckpt, ir, unguarded_spec(seed=seed, **spec_kw), console=quiet)
            console.print(f"[dim]seed {seed}: validated {label} in {time.monotonic() - t:.1f}s[/dim]")
            rows.append((label, seed, row_of(report)))

    table = Table(title=f"tiny MiniCPM-V-2, metrics per precision (seeds {' '.join(map(str, args.seeds))})",
                  title_justify="left")
    table.add_column("precision")
    table.add_column("seed")
    for check, metric, _ in COLUMNS:
        table.add_column(f"{check}\n{metric}", justify="right")

    def fmt(v, metric: str = "") -> str:
        if v is None:
            return "-"
        if isinstance(v, str):
            return v
        if "cosine" in metric and 0.999 <= v < 1.0:
            return f"1-{1.0 - v:.1e}"  # 0.99999995 -> 1-5.0e-08
        return f"{v:.3g}"

    labels = list(dict.fromkeys(r[0] for r in rows))
    for label in labels:
        mine = [r for r in rows if r[0] == label]
        for _, seed, vals in mine:
            table.add_row(label, str(seed), *(fmt(vals.get((c, m)), m) for c, m, _ in COLUMNS))
        if len(mine) > 1:
            worst = []
            for c, m, kind in COLUMNS:
                vs = [v.get((c, m)) for _, _, v in mine if isinstance(v.get((c, m)), (int, float))]
                if m == "first_divergence":
                    vs = [x for x in vs if x >= 0] or [-1]
                worst.append(fmt((max if kind == "max" else min)(vs), m) if vs else "-")
            table.add_row(f"[bold]{label} worst[/bold]", "all", *worst, end_section=True)
    console.print(table)
    if recipe is not None:
        print_gates(console, recipe, rows)
    console.print(f"[dim]total {time.monotonic() - t_all:.0f}s[/dim]")
    if args.json:
        args.json.write_text(json.dumps([{"precision": p, "seed": s, "metrics": {f"{c}.{m}": v for (c, m), v in
                                                                                   vals.items()}}
                                         for p, s, vals in rows], indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
