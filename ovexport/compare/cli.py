"""``ovexport compare``: the click command (registered by ``ovexport.cli``)."""
from __future__ import annotations

from pathlib import Path

import click

EXAMPLES = """
\b
Examples:
  ovexport compare recipes/my-model-fp32.yaml \\
      --sweep compression.llm.mode=int4_sym,int8_asym --sweep compression.llm.group_size=16,32
  ovexport compare recipes/my-model-int4.yaml --sweep compression.llm.ratio=0.6,0.8,1.0 --speed
  ovexport compare dist/a/1.0.0 dist/b/1.0.0 --checkpoint CKPT --eval my-questions/
  ovexport compare RECIPE --dataset lmms-lab/textvqa --split validation --limit 50 \\
      --columns image=image,question=question,answer=answers
"""


@click.command(epilog=EXAMPLES)
@click.argument("targets", nargs=-1, required=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe field for every variant.")
@click.option("--sweep", "sweeps", multiple=True, metavar="KEY=V1,V2",
              help="Values of one recipe key (YAML); several --sweep make a grid. Repeatable.")
@click.option("--variant", "explicit", multiple=True, metavar='"K=V K=V"',
              help="One more variant: space-separated recipe overrides. Repeatable.")
@click.option("--base/--no-base", default=True, show_default=True, help="Include the recipe as it is.")
@click.option("--eval", "eval_set", metavar="heldout|generated|FOLDER",
              help="Eval set: the checkpoint's held-out set (default when it has one), questions about images "
                   "drawn by code (no ground truth), or a folder with questions.jsonl and images.")
@click.option("--dataset", metavar="NAME|DIR", help="A `datasets` dataset (Hub name or local folder), streamed.")
@click.option("--split", default="validation", show_default=True, help="Split of --dataset.")
@click.option("--columns", metavar="image=C,question=C,answer=C", help="Column mapping of --dataset.")
@click.option("--limit", type=click.IntRange(min=1), help="Use the first N questions (default: all; 100 for --dataset).")
@click.option("--reference", default="torch", show_default=True, metavar="torch|BUNDLE",
              help="What variants are compared with: PyTorch with fp32 arithmetic, or a bundle directory.")
@click.option("--checkpoint", type=click.Path(file_okay=False), help="Checkpoint for the PyTorch reference and the "
              "held-out set when comparing bundles.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--speed", is_flag=True, help="Also measure time to first token and decode tokens/s (as `bench`).")
@click.option("--speed-runs", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (default <output.root>/compare/<recipe>).")
@click.option("--device", default="CPU", show_default=True)
@click.option("--ov-config", multiple=True, metavar="KEY=VALUE",
              help="OpenVINO properties for the accuracy runs (default: f32 inference and KV cache, so the figures "
                   "measure the compression, not the CPU's default precision).")
@click.option("--no-reference-cache", is_flag=True, help="Recompute the reference (and do not store it).")
@click.option("--no-run-cache", is_flag=True, help="Do not share step outputs between variants.")
def compare(targets, overrides, sweeps, explicit, base, eval_set, dataset, split, columns, limit, reference, checkpoint,
            max_new_tokens, speed, speed_runs, out, device, ov_config, no_reference_cache, no_run_cache) -> None:
    """Compare compression settings (a recipe and --sweep/--variant) or built bundles on accuracy, size and speed.

    Every variant is scored against one reference, computed once and cached: per-token KL divergence
    (mean, p99, max), top-1 agreement and perplexity ratio teacher-forced on the reference's answers;
    exact match and ROUGE-L of free generation; task accuracy where the eval set has answers; size, LLM
    bytes per token, compressed share; with --speed, TTFT and decode speed. Writes compare.json, .csv,
    .png and .md.
    """
    from ovexport.errors import InputError
    from ovexport.evaluation.evalset import parse_columns
    from ovexport.runtime.ov_models import PRECISION_F32, parse_ov_config

    from .run import EvalOptions, compare_bundles, compare_recipe
    from .sweep import parse_sweep, parse_variant, variants

    opts = EvalOptions(eval=eval_set, dataset=dataset, split=split, columns=parse_columns(columns) if columns else {},
                       limit=limit, reference=reference, max_new_tokens=max_new_tokens, speed=speed,
                       speed_runs=speed_runs, device=device,
                       ov_config=parse_ov_config(ov_config) if ov_config else dict(PRECISION_F32),
                       out=Path(out) if out else None, reference_cache=not no_reference_cache)
    if reference != "torch" and not Path(reference).is_dir():
        raise InputError(f"--reference {reference!r} is neither 'torch' nor a bundle directory",
                         fix="pass --reference torch or the directory of a built bundle")
    is_recipe = len(targets) == 1 and Path(targets[0]).suffix in (".yaml", ".yml")
    if is_recipe:
        if not Path(targets[0]).is_file():
            raise InputError(f"recipe {targets[0]} does not exist", fix="pass a recipe file, e.g. recipes/*.yaml")
        vs = variants([parse_sweep(s) for s in sweeps], [parse_variant(v) for v in explicit], include_base=base)
        compare_recipe(targets[0], overrides, vs, opts, run_cache=not no_run_cache)
        return
    if sweeps or explicit or overrides:
        raise InputError("--sweep, --variant and --set apply to a recipe, not to built bundles",
                         fix="pass one recipe file with them, or bundles without them")
    missing = [t for t in targets if not Path(t).is_dir()]
    if missing:
        raise InputError(f"{missing[0]} is neither a recipe file (.yaml) nor a bundle directory",
                         fix="pass one recipe file, or one or more bundle directories")
    compare_bundles(targets, checkpoint, opts)
