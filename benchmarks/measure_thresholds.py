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

Takes about 1.5 minutes per seed on 2 cores (tiny). With ``--checkpoint`` the given checkpoint is exported
instead (seeds then only vary the validation inputs; int4 uses group size 64 as the full-size recipe).
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
    ap.add_argument("--json", type=Path, default=None, help="write every row as JSON here")
    args = ap.parse_args(argv)

    import warnings
    warnings.filterwarnings("ignore")
    from ovexport.models.registry import get_family
    from ovexport.validators.runner import run_validation

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
            ckpt, ir_tag = work / f"ckpt-seed{seed}", f"seed{seed}"
            if not (ckpt / "config.json").is_file():
                get_family("minicpmv2").write_synthetic(ckpt, size="tiny", seed=seed)
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
