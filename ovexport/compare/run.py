"""Run a compare: build the variants (step engine), compute or read the reference, score each variant,
write the report. Resumable: each scored variant is saved under ``<out>/variants/`` keyed by its compress
fingerprint, the reference key and the evaluation settings; a rerun scores only what changed or is new.
Variants are built and scored one at a time, so memory is that of one variant.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ovexport.engine.atomic import atomic_write_text
from ovexport.engine.code_digest import versions
from ovexport.engine.fingerprint import canonical_json
from ovexport.errors import InputError
from ovexport.evaluation import evalset as evalsets
from ovexport.evaluation import scoring
from ovexport.engine.peak_rss import peak_rss_self
from ovexport.evaluation.reference_answers import reference_answers
from ovexport.evaluation.reference_cache import LIBRARIES, ReferenceCache, default_root
from ovexport.models.registry import code_digest_of
from ovexport.runtime.ov_models import PRECISION_F32
from ovexport.synthetic import sources as synthetic_sources
from ovexport.util.machine import cpu_info, describe

from . import report
from .evaluate import evaluate_irs, reference_metrics
from .sweep import Variant, load_variants



@dataclass
class EvalOptions:
    eval: str | None = None              # "heldout" | a folder | None (= heldout when the checkpoint has one)
    dataset: str | None = None
    split: str = "validation"
    columns: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    reference: str = "torch"             # "torch" or a bundle directory
    max_new_tokens: int = 16
    speed: bool = False
    speed_runs: int = 2
    device: str = "CPU"
    ov_config: dict[str, str] = field(default_factory=lambda: dict(PRECISION_F32))
    out: Path | None = None
    reference_cache: bool = True


def load_evalset(opts: EvalOptions, checkpoint: Path | None):
    if opts.dataset:
        return evalsets.load_dataset_stream(opts.dataset, opts.split, opts.limit or 100, opts.columns)
    if opts.eval == "generated":
        return evalsets.load_generated(opts.limit)
    if opts.eval in (None, "heldout"):
        if checkpoint is None:
            raise InputError("no eval set: the held-out set needs the checkpoint",
                             fix="pass --checkpoint DIR, --eval FOLDER or --dataset NAME")
        if opts.eval is None and not (Path(checkpoint) / evalsets.HELDOUT_DIR).is_dir():
            raise InputError(f"checkpoint {checkpoint} has no held-out set, and no eval set was given",
                             fix="pass --eval generated, --eval FOLDER (questions.jsonl + images) or --dataset NAME")
        return evalsets.load_heldout(checkpoint, opts.limit)
    return evalsets.load_folder(opts.eval, opts.limit)


def _random_weights(ckpt: Path | None) -> bool:
    """A synthetic checkpoint that was not trained (a family's own size, not a registered synthetic source: those are
    the trained fixtures): its accuracy figures are noise."""
    if ckpt is None or not (Path(ckpt) / "config.json").is_file():
        return False
    synth = json.loads((Path(ckpt) / "config.json").read_text()).get("ovexport_synthetic")
    return bool(synth) and synthetic_sources.source(str(synth.get("size"))) is None


class _Progress:
    """One rich progress bar for the question loops (never alive while the engine or NNCF draws)."""

    def __init__(self, console: Console):
        self.console = console

    def __call__(self, what: str):
        prog = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=self.console, transient=True)
        task = prog.add_task(what, total=None)

        def tick(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)
        return prog, tick


def _variant_key(compress_fp: str, ref_key: dict, es, opts: EvalOptions) -> str:
    doc = {"compress": compress_fp, "reference": ref_key, "evalset": es.digest, "max_new_tokens": opts.max_new_tokens,
           "ov_config": opts.ov_config, "device": opts.device,
           "code": code_digest_of(__name__, "ovexport.compare.evaluate", roles=("runtime",)),
           "libraries": versions(*LIBRARIES)}
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


SPEED_FIGURES = ("vision_ms", "ttft_ms", "decode_tokens_per_s")


def _speed_key(variant: dict, first: dict, opts: EvalOptions) -> str:
    """What decides a variant's speed figures: its IRs, the first variant's (the side-by-side baseline), the runs,
    the device and this CPU (a figure from another machine is not reused)."""
    doc = {"variant": variant["key"], "first": first["key"], "runs": opts.speed_runs, "device": opts.device,
           "cpu": cpu_info(), "code": code_digest_of("ovexport.runtime.bench_harness", roles=("runtime",)),
           "libraries": versions(*LIBRARIES)}
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


def _speed(v: dict, opts: EvalOptions, first: dict | None, progress=None) -> dict:
    """TTFT and decode speed as ``ovexport bench`` measures them (runtime defaults, not the pinned f32), with the
    first variant's runs interleaved run for run when ``first`` is given (``bench --baseline``): ratios from the
    same minutes of the same machine."""
    from ovexport.models.registry import family_for
    from ovexport.runtime.bench_baselines import ir_pipeline
    from ovexport.runtime.bench_harness import run_bench
    from ovexport.runtime.bench_inputs import bench_cases
    from ovexport.util.memory import release_memory

    pipe = ir_pipeline(Path(v["ir_dir"]), Path(v["meta_dir"]), opts.device)
    try:
        res = run_bench(pipe, bench_cases(family_for(Path(v["meta_dir"]))), runs=opts.speed_runs, warmup=1,
                        max_new_tokens=32, progress=progress,
                        baseline=first and first["ir_dir"], baseline_meta=first and first["meta_dir"])
    finally:
        del pipe
        release_memory()

    def figures(cases: dict) -> dict:
        return {k: {kk: c[kk] for kk in SPEED_FIGURES} for k, c in cases.items()}

    out = {"cases": figures(res["cases"]), "runs": opts.speed_runs, "cpu": res["cpu"],
           "read_bandwidth_gb_s": res["bandwidth"]["read_bandwidth_gb_s"]}
    out.update(next(iter(out["cases"].values())))
    if first is not None:
        out["first"] = {"label": first["label"], "cases": figures(res["baseline"]["cases"]),
                        "ratios": res["baseline"]["ratios"]}
    return out


def _save_variant(out: Path, name: str, data: dict) -> None:
    (out / "variants").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "variants" / f"{name}.json", json.dumps(data, indent=2, default=str) + "\n")


def _load_variant(out: Path, name: str, key: str) -> dict | None:
    f = out / "variants" / f"{name}.json"
    try:
        data = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if data.get("key") == key else None


class Comparison:
    """State shared by the variants of one compare: eval set, reference, output folder, console."""

    def __init__(self, opts: EvalOptions, console: Console, out: Path, cache_root: Path):
        self.opts, self.console, self.out = opts, console, out
        self.cache = ReferenceCache(cache_root, enabled=opts.reference_cache)
        self.progress = _Progress(console)
        self.evalset = None
        self.reference: dict | None = None
        self.ref_key: dict | None = None
        self.ref_info: dict = {}
        self.family = None
        self.checkpoint: Path | None = None

    def prepare(self, family, checkpoint: Path | None) -> None:
        """Load the eval set and the reference (cached) once."""
        if self.reference is not None:
            return
        from ovexport.models.registry import family_for

        self.family, self.checkpoint = family, checkpoint
        es = self.evalset = load_evalset(self.opts, checkpoint)
        self.console.print(f"eval set: {es.name}, {len(es)} questions"
                           f"{' with answers' if es.has_answers else ''}", highlight=False)
        ref = self.opts.reference
        t0 = time.monotonic()
        prog, tick = self.progress(f"reference ({ref}) answering")
        with prog:
            if ref == "torch":
                if checkpoint is None:
                    raise InputError("a PyTorch reference needs the checkpoint",
                                     fix="pass --checkpoint DIR, or --reference BUNDLE")
                answers, key, hit = reference_answers(self.cache, family, es, self.opts.max_new_tokens,
                                                      ckpt=checkpoint, progress=tick, isolate=True)
            else:
                bundle = Path(ref)
                fam = family_for(bundle)
                answers, key, hit = reference_answers(self.cache, fam, es, self.opts.max_new_tokens, bundle=bundle,
                                                      ov_config=self.opts.ov_config, progress=tick, isolate=True)
        self.reference, self.ref_key = answers, key
        self.ref_info = {"kind": "PyTorch (fp32 arithmetic)" if ref == "torch" else f"bundle {ref}",
                         "cached": hit, "seconds": round(time.monotonic() - t0, 2),
                         # computed in its own process: that process's peak (this one never holds the model)
                         "peak_rss_bytes": None if hit else self.cache.compute_peak_rss_bytes}
        peak = self.ref_info["peak_rss_bytes"]
        self.console.print(f"reference: {'read from cache' if hit else 'computed and cached'} "
                           f"in {self.ref_info['seconds']:.1f}s" + (f", its process peaked at {peak / 1e9:.2f} GB"
                                                                  if peak else "") + f" ({self.cache.root})",
                           highlight=False, soft_wrap=True)

    def score(self, name: str, label: str, ir_dir: Path, meta_dir: Path, fingerprint: str,
              overrides: Sequence[str] = (), compress_fingerprint: str | None = None) -> dict:
        from ovexport.evaluation.variant_cost import ir_cost

        key = _variant_key(fingerprint, self.ref_key, self.evalset, self.opts)
        found = _load_variant(self.out, name, key)
        if found is not None:
            self.console.print(f"  {label}: up to date (variants/{name}.json)", highlight=False, soft_wrap=True)
            return found
        t0 = time.monotonic()
        prog, tick = self.progress(f"{label}: answering")
        with prog:
            res = evaluate_irs(ir_dir, meta_dir, self.family, self.evalset, self.reference, self.opts.max_new_tokens,
                               self.opts.ov_config, self.opts.device, progress=tick)
        data = {"key": key, "name": name, "label": label, "overrides": list(overrides), "ir_dir": str(ir_dir),
                "meta_dir": str(meta_dir), "compress_fingerprint": compress_fingerprint,
                "metrics": res["metrics"], "answers": res["answers"], "kl_per_question": res["kl_per_question"],
                "cost": ir_cost(ir_dir, self.family),
                "eval_seconds": round(time.monotonic() - t0, 2)}
        _save_variant(self.out, name, data)
        m = data["metrics"]
        self.console.print(f"  {label}: KL mean {m['kl_mean']:.4g}, top-1 {m['top1_agreement']:.3f}, exact vs ref "
                           f"{m['exact_match']:.3f}" + (f", task acc {m['task_accuracy']:.3f}"
                                                        if m.get("task_accuracy") is not None else ""),
                           highlight=False, soft_wrap=True)
        return data

    def measure_speed(self, variants: list[dict]) -> None:
        """``--speed``, once every variant is scored: each variant timed side by side with the first (runs
        interleaved, as ``bench --baseline``), so the ratios compare minutes of the same machine; the first
        variant's own figures are those of its runs beside the second. Kept per variant until its IRs, the
        first's or this CPU change."""
        if not self.opts.speed or not variants:
            return
        first = variants[0]
        keys = [_speed_key(v, first, self.opts) for v in variants]   # reads /proc/cpuinfo and the runtime's sources
        todo = [(i, v) for i, v in enumerate(variants) if (v.get("speed") or {}).get("key") != keys[i]]
        if not todo:
            self.console.print("speed: up to date", highlight=False)
            return
        self.console.rule(f"[bold]speed[/]: {len(variants)} variants, each beside {first['label']}")
        for i, v in todo:
            if i == 0 and len(variants) > 1:
                continue                  # measured beside the second variant, below
            sp = _speed(v, self.opts, first if i > 0 else None,
                        progress=lambda msg, lab=v["label"]: self.console.print(f"  {lab}: {msg}", highlight=False,
                                                                                soft_wrap=True))
            if i > 0 and (first.get("speed") or {}).get("key") != keys[0]:
                cases = sp["first"]["cases"]
                first["speed"] = {"cases": cases, **next(iter(cases.values())), "runs": sp["runs"],
                                  "cpu": sp["cpu"], "beside": v["label"], "key": keys[0]}
                _save_variant(self.out, first["name"], first)
            sp["key"] = keys[i]
            v["speed"] = sp
            _save_variant(self.out, v["name"], v)
            r = (sp.get("first") or {}).get("ratios") or {}
            case = next(iter(r), None)
            self.console.print(f"  {v['label']}: TTFT {sp['ttft_ms']:.0f} ms, decode {sp['decode_tokens_per_s']:.2f} "
                               f"tok/s" + (f"; x first ({case}): TTFT {r[case]['ttft']}, decode "
                                           f"{r[case]['decode_tokens_per_s']}" if case else ""),
                               highlight=False, soft_wrap=True)

    def finish(self, title: str, recipe: str, variants: list[dict]) -> dict:
        es = self.evalset
        for v in variants[1:]:           # KL over the first variant's, paired on the same questions
            v["kl_vs_first"] = scoring.kl_ratio_ci(v.get("kl_per_question") or [],
                                                   variants[0].get("kl_per_question") or [])
        if len(variants) > 1:
            variants[0]["kl_vs_first"] = {"ratio": 1.0, "lo": 1.0, "hi": 1.0, "level": None}
        ref_row = {"label": "reference", "name": "reference", "is_reference": True,
                   **reference_metrics(es, self.reference)}
        rows = report.ranked([ref_row] + [{**report.flat_row(v), "is_reference": False} for v in variants])
        result = {
            "recipe": recipe, "evalset": {"name": es.name, "items": len(es), "has_answers": es.has_answers,
                                          "digest": es.digest},
            "reference": self.ref_info, "max_new_tokens": self.opts.max_new_tokens, "ov_config": self.opts.ov_config,
            "machine": describe(), "cpu": cpu_info(), "random_weights": _random_weights(self.checkpoint),
            "reference_cache": {"root": str(self.cache.root), "hits": self.cache.hits, "misses": self.cache.misses},
            "rows": rows, "pareto": sorted(report.pareto(rows)), "variants": variants,
            # this process's own peak (the reference and the steps ran in processes of their own)
            "peak_rss_bytes": peak_rss_self(),
        }
        self.out.mkdir(parents=True, exist_ok=True)
        report.write_json(result, self.out / "compare.json")
        report.write_csv(rows, self.out / "compare.csv")
        report.plot(rows, self.out / "compare.png", title)
        atomic_write_text(self.out / "compare.md", report.markdown(result, rows))
        # a log file (not a terminal) gets the whole table rather than 80 columns of one-word cells
        width = self.console.width
        if not self.console.is_terminal:
            self.console.width = max(width, 200)
        try:
            self.console.print(report.table(rows, title))
        finally:
            self.console.width = width
        if result["random_weights"]:
            self.console.print("[yellow]note:[/] random weights: the accuracy figures are noise", highlight=False)
        self.console.print(f"wrote {self.out}/compare.json, compare.csv, compare.png, compare.md", highlight=False,
                           soft_wrap=True)
        return result


def compare_recipe(recipe_path: str, base_overrides: Sequence[str], variants: Sequence[Variant], opts: EvalOptions,
                   console: Console | None = None, run_cache: bool = True) -> dict:
    """Build each variant through the step engine up to ``compress`` and score it."""
    import ovexport.steps  # noqa: F401 - registers the steps
    from ovexport.engine import run_steps
    from ovexport.models.registry import family_for

    console = console or Console()
    loaded = load_variants(recipe_path, base_overrides, variants)
    if not loaded:
        raise InputError("nothing to compare", fix="give --sweep KEY=V1,V2 or --variant, or keep the base recipe")
    base = loaded[0][1]
    out = opts.out or Path(os.path.abspath(Path(base.output.root).expanduser())) / "compare" / base.name.split(".v-")[0]
    cmp = Comparison(opts, console, out, default_root(base.output.root))
    scored = []
    for i, (v, recipe) in enumerate(loaded, 1):
        console.rule(f"[bold]variant {i}/{len(loaded)}[/]: {v.label}")
        res = run_steps.run(recipe, until="compress", console=console, run_cache=run_cache)
        ckpt, ir_dir = res.artifacts["checkpoint"], res.artifacts["compressed_ir"]
        cmp.prepare(family_for(ckpt), ckpt)
        fp = res.row("compress").fingerprint
        scored.append(cmp.score(recipe.name, v.label, ir_dir, ckpt, fp, v.overrides, compress_fingerprint=fp))
    cmp.measure_speed(scored)
    title = f"ovexport compare {Path(recipe_path).name}: {len(scored)} variants on {cmp.evalset.name}"
    return cmp.finish(title, Path(recipe_path).name, scored)


def compare_bundles(bundles: Sequence[str], checkpoint: str | None, opts: EvalOptions,
                    console: Console | None = None) -> dict:
    """Score bundles already built (each against the same reference: bundles of one source)."""
    from ovexport.engine.fingerprint import digest_dir
    from ovexport.models.registry import family_for

    from .bundles import bundle_variants

    console = console or Console()
    for b in bundles:
        if not Path(b).is_dir():
            raise InputError(f"bundle {b} does not exist", fix="pass directories written by `ovexport run`")
    found = bundle_variants(bundles)
    paths = [v.path for v in found]
    ckpt = Path(checkpoint) if checkpoint else None
    out = opts.out or Path("compare") / "bundles"
    cmp = Comparison(opts, console, out, default_root(None))
    cmp.prepare(family_for(ckpt or paths[0]), ckpt)
    scored = []
    for v in found:
        console.rule(f"[bold]{v.label}[/]")
        scored.append(cmp.score(v.name, v.label, v.path, v.path, digest_dir(v.path)[0]))
    cmp.measure_speed(scored)
    return cmp.finish(f"ovexport compare: {len(scored)} bundles on {cmp.evalset.name}", ", ".join(map(str, paths)),
                      scored)
