"""Compression settings on the tiny trained fixture(s): one ``ovexport compare`` per seed with a named set of
variants, then, over every seed, each variant's mean KL as a ratio to the first variant's with a 95 % paired
bootstrap interval on all questions pooled (``scoring.kl_ratio_ci`` on the variants' ``kl_per_question``) and its
right answers. Figures: BENCHMARKS.md, "Compression settings on the trained fixture", and
docs/investigations/2026-12-01-speed-follows-bytes.md.

    python benchmarks/trained_compare.py candidates --seeds 0 1 2       # 17 variants, notebook's setting first
    python benchmarks/trained_compare.py grid --seeds 0                 # 26 variants: mode x ratio x group, ...
    python benchmarks/trained_compare.py int8vision --seeds 0           # ablations of the int8_static image encoder
    python benchmarks/trained_compare.py bias_correction --seeds 0 1 2  # int8_static with and without bias correction
    python benchmarks/trained_compare.py candidates --dry-run           # print the compare commands only
    python benchmarks/trained_compare.py bias_correction --seeds 0 1 2 --reuse   # pool seeds already compared

Each seed's checkpoint is ``synthetic://tiny-trained?seed=S``: the first use of a seed trains it (~6 min of CPU,
then cached in ~/.cache/ovexport). Calibration for the data-aware variants and ``int8_static``: images of the task
drawn by ``benchmarks/write_task_calibration.py`` (never the held-out ones), except where a variant says builtin.
Output: ``ROOT/compare/<set>-seed<S>/compare.{json,csv,png,md}`` per seed, then the pooled table on stdout.

These sets replace the shell scripts the figures were first measured with, which lived outside the repository
(``cands.sh``, ``cands2.sh`` and ``asym.sh``: ``candidates``; ``tiny5.sh``: ``grid``; ``tiny3.sh`` and ``tiny6.sh``:
``int8vision``); they are rebuilt from the variants BENCHMARKS.md lists. Not recorded, so chosen here: the builtin
calibration's sample count of the ``candidates`` set's last variant (16, as the task calibration), and the
ignored-scope patterns of the ``int8vision`` set (node names of the image encoder's IRs: ``patch_embed``,
``blocks.N.attn``, ``blocks.N.mlp``, ``resampler``). NNCF does not check that a pattern matches: in openvino.genai's
two-IR layout the modules keep MiniCPM-V-2's names (``__module.vpm.*``, ``__module.resampler.*``), so
``.*resampler.*`` matches 5 of the resampler IR's 6 MatMuls (checked 2026-12-05 on the tiny bundle's
``openvino_resampler_model.xml``), as it did in the one-IR layout the figures were measured on.

A cheap smoke run on random weights (accuracy is noise there; checks that every variant builds and scores):
``--recipe recipes/tiny-minicpmv2-fp32.yaml --source "synthetic://tiny?seed={seed}" --eval generated --limit 2``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NB = "compression.llm={mode: int4_sym, group_size: 64, ratio: 0.6}"     # the published notebook's setting
RESAMPLER = "ignored_scope: {patterns: ['.*resampler.*']}"


def llm(spec: str) -> str:
    return f"compression.llm={{mode: int4_sym, {spec}}}"


def nb_int8vision(options: str = "", calibration: str | None = None) -> str:
    enc = "{mode: int8_static" + (f", {options}" if options else "") + "}"
    return f"{NB} compression.image_encoder={enc}" + (f" calibration={calibration}" if calibration else "")


ASYM = [f"compression.llm={{mode: int4_asym, group_size: {g}, ratio: {r}}}"
        for g, r in ((64, 0.6), (32, 1.0), (64, 1.0), (128, 1.0))]

SETS: dict[str, dict] = {
    # "Speed follows bytes on an AVX512-VNNI CPU", accuracy part (seeds 0, 1, 2), notebook's setting first
    "candidates": {"base": False, "variants": [
        NB,
        "compression.llm={mode: int8_asym}",
        llm("group_size: 128, ratio: 0.8"),
        llm("group_size: 64, ratio: 1.0"),
        llm("group_size: 128, ratio: 0.6"),
        llm("group_size: 128, ratio: 1.0, awq: true"),
        llm("group_size: 128, ratio: 0.8, sensitivity_metric: hessian_input_activation"),
        llm("group_size: 128, ratio: 1.0"),
        llm("group_size: 64, ratio: 0.8"),
        llm("group_size: 128, ratio: 1.0, scale_estimation: true"),
        nb_int8vision(f"{RESAMPLER}, smooth_quant_alpha: -1"),
        nb_int8vision(RESAMPLER),
        nb_int8vision(calibration="{source: builtin, num_samples: 16}"),
        *ASYM,
    ]},
    # "The grid on the 90 % trained model": the recipe itself (fp32) first, then 2 x 3 x 3 and 8 more
    "grid": {"base": True, "sweeps": ["compression.llm.mode=int4_sym,int4_asym", "compression.llm.ratio=0.6,0.8,1.0",
                                      "compression.llm.group_size=32,64,128"], "variants": [
        "compression.llm={mode: int8_asym}",
        llm("group_size: 64, ratio: 1.0, awq: true"),
        llm("group_size: 64, ratio: 1.0, scale_estimation: true"),
        llm("group_size: 64, ratio: 1.0, awq: true, scale_estimation: true"),
        llm("group_size: 64, ratio: 1.0, all_layers: true"),
        nb_int8vision(),
        nb_int8vision(RESAMPLER),
    ]},
    # what leaving bias correction out costs (it keeps the full-size image encoder's quantization under 10 GB:
    # docs/investigations/2026-12-05-export-memory.md), notebook first
    "bias_correction": {"base": False, "variants": [
        NB,
        nb_int8vision(),
        nb_int8vision("bias_correction: false"),
    ]},
    # the int8_static image encoder's ablations ("a floor near 30x the notebook setting's KL"), notebook first
    "int8vision": {"base": False, "calibration_images": 64, "variants": [
        NB,
        nb_int8vision(calibration="{source: builtin, num_samples: 16}"),
        nb_int8vision(),
        nb_int8vision(RESAMPLER),
        nb_int8vision("smooth_quant_alpha: -1"),
        nb_int8vision("ignored_scope: {patterns: ['.*patch_embed.*']}"),
        nb_int8vision("model_type: generic"),
        nb_int8vision("fast_bias_correction: false"),
        nb_int8vision(calibration="{source: CAL, num_samples: 64}"),
        nb_int8vision(r"ignored_scope: {patterns: ['.*blocks\.\d+\.attn\..*']}"),
        nb_int8vision(r"ignored_scope: {patterns: ['.*blocks\.\d+\.mlp\..*']}"),
    ]},
}


def compare_argv(name: str, seed: int, a: argparse.Namespace, cal: Path) -> list[str]:
    spec = SETS[name]
    argv = ["compare", a.recipe, "--set", f"output.root={a.root}", "--set", f"source={a.source.format(seed=seed)}",
            "--set", f"calibration={{source: {cal}, num_samples: 16}}"]
    argv += [] if spec["base"] else ["--no-base"]
    for s in spec.get("sweeps", ()):
        argv += ["--sweep", s]
    for v in spec["variants"]:
        argv += ["--variant", v.replace("source: CAL", f"source: {cal}")]
    argv += ["--eval", a.eval, "--max-new-tokens", str(a.max_new_tokens), "--out", str(out_dir(a, name, seed))]
    return argv + (["--limit", str(a.limit)] if a.limit else [])


def out_dir(a: argparse.Namespace, name: str, seed: int) -> Path:
    return Path(a.root) / "compare" / f"{name}-seed{seed}"


def pooled(results: list[dict]) -> list[dict]:
    """Every variant of the first seed's compare, its KL over the first variant's on all seeds' questions."""
    from ovexport.evaluation import scoring

    def by_label(res: dict) -> dict[str, dict]:
        return {v["label"]: v for v in res["variants"]}

    first = results[0]["variants"][0]["label"]
    rows = []
    for label in by_label(results[0]):
        kl, kl_first, right, asked, per_seed = [], [], 0, 0, []
        for res in results:
            v, f = by_label(res).get(label), by_label(res)[first]
            if v is None:
                break
            kl += v["kl_per_question"] or []
            kl_first += f["kl_per_question"] or []
            acc, n = v["metrics"].get("task_accuracy"), res["evalset"]["items"]
            right = None if acc is None or right is None else right + round(acc * n)
            asked += n
            per_seed.append(v.get("kl_vs_first"))
        else:
            rows.append({"label": label, "per_seed": per_seed, "pooled": scoring.kl_ratio_ci(kl, kl_first),
                         "right": right, "questions": asked})
    return rows


def fmt(ci: dict | None) -> str:
    if not ci:
        return "-"
    return f"{ci['ratio']:.2f}" + (f" ({ci['lo']:.2f}-{ci['hi']:.2f})" if ci.get("level") else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--root", default="dist-trained-compare", help="output.root of every compare")
    ap.add_argument("--recipe", default="recipes/tiny-trained-minicpmv2-fp32.yaml")
    ap.add_argument("--source", default="synthetic://tiny-trained?seed={seed}", help="checkpoint; {seed} is filled")
    ap.add_argument("--eval", default="heldout")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--max-new-tokens", type=int, default=6)
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--reuse", action="store_true",
                    help="a seed whose ROOT/compare/<set>-seed<S>/compare.json exists is read, not run again")
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    results = []
    for seed in a.seeds:
        cal = Path(a.root) / "calibration" / f"task-seed{seed}-n{SETS[a.set].get('calibration_images', 16)}"
        cal_argv = [sys.executable, str(REPO / "benchmarks" / "write_task_calibration.py"), str(cal),
                    "--seed", str(seed), "--n", str(SETS[a.set].get("calibration_images", 16))]
        argv = [sys.executable, "-m", "ovexport.cli", *compare_argv(a.set, seed, a, cal)]
        print("$ " + shlex.join(cal_argv) + "\n$ " + shlex.join(argv), flush=True)
        if a.dry_run:
            continue
        done = out_dir(a, a.set, seed) / "compare.json"
        if a.reuse and done.is_file():
            print(f"reusing {done}", flush=True)
            results.append(json.loads(done.read_text()))
            continue
        for cmd in (cal_argv, argv):
            if subprocess.run(cmd, cwd=REPO, env=env).returncode != 0:
                sys.exit(f"failed: {shlex.join(cmd)}")
        results.append(json.loads((out_dir(a, a.set, seed) / "compare.json").read_text()))
    if not results:
        return
    seeds = " | ".join(f"seed {s}" for s in a.seeds)
    print(f"\n| variant | {seeds} | pooled, {sum(r['evalset']['items'] for r in results)} questions | right answers |")
    print("|---|" + "---:|" * (len(a.seeds) + 2))
    for row in pooled(results):
        cells = " | ".join(fmt(c) for c in row["per_seed"])
        right = "-" if row["right"] is None else f"{row['right']} of {row['questions']}"
        print(f"| {row['label']} | {cells} | {fmt(row['pooled'])} | {right} |")


if __name__ == "__main__":
    main()
