"""The ``ovexport`` command line (click)."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import click
from ovexport import __version__
from ovexport.errors import OvexportError, RecipeError
from ovexport.util.console import ReadableConsole

console = ReadableConsole(stderr=False)
err_console = ReadableConsole(stderr=True)

SET_HELP = "Override a recipe field: dotted.key=value (value parsed as YAML). Repeatable."


def _fail(e: OvexportError) -> None:
    if isinstance(e, RecipeError) and len(e.problems) > 1:
        err_console.print(f"[bold red]error:[/] {len(e.problems)} problems", highlight=False)
        for p in e.problems:
            err_console.print(f"  {p}", highlight=False, soft_wrap=True)
        if e.fix:
            err_console.print(f"  (fix: {e.fix})", highlight=False, soft_wrap=True)
    else:
        err_console.print(f"[bold red]error:[/] {e.line()}", highlight=False, soft_wrap=True)
    sys.exit(e.exit_code)


# commands defined in their own package, imported when used (importing them all would make every command start
# ~0.7 s slower: the calibration package alone pulls in the recipe schema and PIL)
LAZY_COMMANDS = {
    "calibration-set": "ovexport.calibration.cli:calibration_set",
    "compare": "ovexport.compare.cli:compare",
    "eval": "ovexport.evaluation.cli:eval_",
    "inspect": "ovexport.exporter.cli:inspect",
}


class _Group(click.Group):
    """Turns every OvexportError into one red line and a non-zero exit code, never a traceback. Commands of
    ``LAZY_COMMANDS`` are imported when named (or listed by --help)."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS and name not in self.commands:
            module, attr = LAZY_COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OvexportError as e:
            _fail(e)
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]: nothing half-written was kept")
            sys.exit(130)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="ovexport")
def cli() -> None:
    """Turn vision-language checkpoints into validated, versioned OpenVINO bundles, and run them."""


def _load(path: str, overrides: tuple[str, ...]):
    from ovexport.recipe.load import load_any
    return load_any(path, overrides)


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--force", multiple=True, metavar="STEP", help="Re-run this step even if up to date. Repeatable.")
@click.option("--until", metavar="STEP", help="Stop after this step.")
@click.option("--no-run-cache", is_flag=True, help="Neither take step outputs from the run cache nor store them "
              "there (see `ovexport cache info`).")
@click.option("--publish", "do_publish", is_flag=True, help="Then publish each bundle to its output.publish repo "
              "(or the pipeline's publish.repo_id_prefix + name); see `ovexport publish`.")
@click.option("--allow-ungated", is_flag=True, help="With --publish: also publish bundles whose validation is not "
              "gated (see `ovexport publish --allow-ungated`).")
def run(recipe: str, overrides: tuple[str, ...], force: tuple[str, ...], until: str | None,
        no_run_cache: bool, do_publish: bool, allow_ungated: bool) -> None:
    """Run a recipe (or every recipe of a pipeline file): convert, compress, validate, package."""
    import ovexport.steps  # noqa: F401  (registers the steps)
    from ovexport.engine import run_steps
    from ovexport.engine.report import summary_table

    recipes = _publish_targets(recipe, overrides) if do_publish else [(r, None) for r in _load(recipe, overrides)]
    for r, repo_id in recipes:
        console.rule(f"[bold]{r.name}[/] {r.version}  ({r.source})")
        result = run_steps.run(r, force=force, until=until, console=console, run_cache=not no_run_cache)
        console.print(summary_table(result))
        bundle = result.artifacts.get("bundle")
        if bundle is not None:
            console.print(f"bundle: [bold green]{bundle}[/]", highlight=False)
            _print_bundle_validation(bundle)
        if do_publish and bundle is not None:
            from ovexport.publish.hub import publish as publish_bundle
            publish_bundle(bundle, repo_id, private=r.output.publish.private, allow_ungated=allow_ungated,
                           echo=lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True))


def _print_bundle_validation(bundle: Path) -> None:
    """``validation passed`` / ``validation not gated: ...`` / ``validation not validated`` of a built bundle."""
    from ovexport.bundle.manifest import read_manifest
    from ovexport.validators.run_checks import verdict

    console.print(verdict(read_manifest(bundle).get("validation")), highlight=False, soft_wrap=True)


def _publish_targets(path: str, overrides: tuple[str, ...]):
    """[(recipe, repo_id)] with output.publish filled in from the pipeline's repo_id_prefix (so the model card
    names the repo); a recipe with nowhere to go is an error before anything runs."""
    from ovexport.recipe.load import load_pipeline
    from ovexport.recipe.schema import PublishSpec

    try:
        spec, recipes = load_pipeline(path, overrides)
    except RecipeError:
        spec, recipes = None, _load(path, overrides)
    out = []
    for r in recipes:
        repo_id = spec.publish_repo_id(r) if spec is not None else (r.output.publish and r.output.publish.repo_id)
        if repo_id is None:
            raise RecipeError([f"{r.path or r.name}: --publish, but the recipe has no output.publish.repo_id"],
                              fix="add output: {publish: {repo_id: ORG/NAME}} or, in pipeline.yaml, "
                                  "publish: {repo_id_prefix: ORG/}")
        if r.output.publish is None:
            r.output.publish = PublishSpec(repo_id=repo_id)
        out.append((r, repo_id))
    return out


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
def check(paths: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """Validate recipes or pipeline files without running anything (all errors at once)."""
    import ovexport.steps  # noqa: F401
    from ovexport.engine import planner

    problems: list[str] = []
    count = 0
    for p in paths:
        try:
            recipes = _load(p, overrides)
        except RecipeError as e:
            problems.extend(e.problems)
            continue
        for r in recipes:
            try:
                planner.validate(r)
                count += 1
            except OvexportError as e:
                problems.append(f"{p}: {r.name}: {e.line()}")
                continue
            if "validate" in r.steps:
                from ovexport.validators.gating import ungated_warnings
                for w in ungated_warnings(r.validation, f"{p}: {r.name}"):
                    err_console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    if problems:
        raise RecipeError(problems)
    console.print(f"[green]ok[/]: {count} recipe(s) valid")


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--force", multiple=True, metavar="STEP")
@click.option("--until", metavar="STEP")
@click.option("--no-run-cache", is_flag=True, help="Plan as `run --no-run-cache` would run.")
def plan(recipe: str, overrides: tuple[str, ...], force: tuple[str, ...], until: str | None,
         no_run_cache: bool) -> None:
    """Show the steps of a recipe, their fingerprints and which are up to date."""
    import ovexport.steps  # noqa: F401
    from ovexport.engine import planner
    from ovexport.engine.report import plan_table

    for r in _load(recipe, overrides):
        console.print(plan_table(planner.plan(r, force=force, until=until, console=console,
                                              run_cache=not no_run_cache)))


@cli.group()
def cache() -> None:
    """The run cache: step outputs shared by every recipe of an output root, keyed by fingerprint.

    \b
    It lives in <output.root>/.work/.runcache (OVEXPORT_RUN_CACHE=DIR moves it, =off disables it).
    Entries hard-link the recipes' artifacts: they take no extra disk while those exist.
    """


def _run_caches(recipe: str | None, overrides: tuple[str, ...], root: str):
    from ovexport.engine.run_cache import RunCache, cache_dir_for

    roots = [r.output.root for r in _load(recipe, overrides)] if recipe else [root]
    dirs = list(dict.fromkeys(cache_dir_for(x) for x in roots))
    if dirs == [None]:
        raise OvexportError("the run cache is disabled (OVEXPORT_RUN_CACHE=off)",
                            fix="unset OVEXPORT_RUN_CACHE or set it to a directory")
    return [RunCache(d) for d in dirs if d is not None]


_CACHE_WHERE = [
    click.argument("recipe", required=False, type=click.Path(dir_okay=False)),
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP),
    click.option("--root", default="dist", show_default=True, metavar="DIR",
                 help="Output root whose cache to use when no RECIPE is given."),
]


def _cache_where(f):
    for deco in reversed(_CACHE_WHERE):
        f = deco(f)
    return f


@cache.command("info")
@_cache_where
@click.option("--verify", is_flag=True, help="Re-hash every file (slow on big entries) instead of checking sizes "
              "and modification times.")
def cache_info(recipe: str | None, overrides: tuple[str, ...], root: str, verify: bool) -> None:
    """List the run cache's entries (of RECIPE's output root, or of --root)."""
    from ovexport.engine.report import run_cache_table

    for c in _run_caches(recipe, overrides, root):
        table, total = run_cache_table(c, verify_content=verify)
        if table.row_count:
            console.print(table)
        console.print(total, highlight=False)


@cache.command("clear")
@_cache_where
@click.option("--step", metavar="STEP", help="Only the entries of this step.")
def cache_clear(recipe: str | None, overrides: tuple[str, ...], root: str, step: str | None) -> None:
    """Delete run cache entries. Recipes' artifacts and bundles are kept (they hold their own links)."""
    from ovexport.engine.report import format_bytes

    for c in _run_caches(recipe, overrides, root):
        n, freed = c.clear(step=step)
        console.print(f"removed {n} entr{'y' if n == 1 else 'ies'} from {c.root}, freed {format_bytes(freed)}",
                      highlight=False)


class _RegistryHelpOption(click.Option):
    """An option whose help text is asked of the model-family registry when help is shown, not at import."""

    def __init__(self, *args, help_from, **kwargs):
        self._help_from = help_from
        super().__init__(*args, **kwargs)

    def get_help_record(self, ctx):
        self.help = self._help_from()
        return super().get_help_record(ctx)


def _family_help() -> str:
    from ovexport.models.registry import family_names
    return f"Model family to synthesise: {family_names()}. Default: the first."


def _size_help() -> str:
    from ovexport.models.registry import families
    sizes = "; ".join(f"{f.name}: {', '.join(f.synthetic_sizes)}" for f in families().values())
    return f"Synthetic size ({sizes}). Default: the family's first."


@cli.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--size", default=None, cls=_RegistryHelpOption, help_from=_size_help)
@click.option("--trained", is_flag=True, help="Train the tiny model on a generated visual question-answering task "
              "(a few minutes the first time, then cached in $OVEXPORT_CACHE, default ~/.cache/ovexport); its "
              "held-out questions are written to OUT/heldout/.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--model", "family_name", default=None, cls=_RegistryHelpOption, help_from=_family_help)
def synth(out: str, size: str | None, trained: bool, seed: int, family_name: str | None) -> None:
    """Write a synthetic checkpoint (exact real layout, random or trained weights) into OUT."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TimeElapsedColumn

    from ovexport.engine.atomic import atomic_dir
    from ovexport.models.registry import default_family, get_family, write_synthetic
    from ovexport.synthetic.sources import source, trained_fixtures

    family = get_family(family_name) if family_name else default_family()
    size = size or family.synthetic_sizes[0]
    fixtures = trained_fixtures(family.name)     # {the size it trains: that trained fixture's source}
    if trained:
        if size not in fixtures:
            raise OvexportError(f"{family.name} has no trained {size!r} fixture",
                                fix=f"--trained works with --size {' or '.join(fixtures) or '(none)'}")
        size = fixtures[size].name
    elif size not in (*family.synthetic_sizes, *(s.name for s in fixtures.values())):
        raise OvexportError(f"{family.name} has no synthetic size {size!r}",
                            fix=f"use --size {' or '.join(family.synthetic_sizes)}, or --trained")
    fixture = source(size)
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        raise OvexportError(f"{target} exists and is not empty", fix="choose a new directory or delete it first")
    what = "training step" if fixture else "parameter"
    with Progress("[progress.description]{task.description}", BarColumn(), TaskProgressColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as prog:
        task = prog.add_task(f"synthetic {size} checkpoint ({what}s)", total=None)
        with atomic_dir(target) as tmp:
            write_synthetic(size, tmp, seed=seed,
                            progress=lambda done, total: prog.update(task, completed=done, total=total))
    console.print(f"wrote {target}")
    summary = fixture.report(target) if fixture and fixture.report else None
    if summary:
        console.print(summary, highlight=False)


def _runtime_options(f):
    """--device, --ov-config, --cache-dir: how the bundle is compiled (chat, serve, bench)."""
    f = click.option("--cache-dir", type=click.Path(file_okay=False), metavar="DIR",
                     help="Keep OpenVINO's compiled models in DIR (off by default: on the full-size int4 bundle "
                          "it saves ~1.5 s per start but stores a 3.4 GB copy and slows the first start).")(f)
    f = click.option("--ov-config", multiple=True, metavar="KEY=VALUE",
                     help="OpenVINO property, e.g. INFERENCE_PRECISION_HINT=f32 or KV_CACHE_PRECISION=u8. "
                          "Repeatable. Defaults on CPU: PERFORMANCE_HINT=LATENCY NUM_STREAMS=1.")(f)
    f = click.option("--device", default="CPU", show_default=True, help="OpenVINO device (CPU, GPU, AUTO...).")(f)
    return f


def _load_pipeline(bundle: str, device: str, ov_config: tuple[str, ...], cache_dir: str | None):
    from ovexport.runtime.ov_models import parse_ov_config
    from ovexport.runtime.pipeline import Pipeline

    return Pipeline.load(bundle, device=device, ov_config=parse_ov_config(ov_config), cache_dir=cache_dir)


def _warn_if_unvalidated(bundle: str) -> None:
    """On stderr, once the bundle and the inputs loaded (so an input error stays one line)."""
    from ovexport.bundle.manifest import unvalidated_warning

    if (warning := unvalidated_warning(Path(bundle))) is not None:
        err_console.print(warning, style="yellow", highlight=False, markup=False, soft_wrap=True)


@cli.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.argument("prompt", required=False)
@click.option("--image", type=click.Path(dir_okay=False), help="Image to ask about.")
@click.option("--greedy", is_flag=True, help="Greedy decoding (always greedy, whatever the default is).")
@click.option("--sample", is_flag=True, help="Sampling (the default), with the model's own top-p, top-k, temperature "
              "and repetition penalty (its family's and its generation_config.json's) unless given.")
@click.option("--num-beams", type=click.IntRange(min=1), help="Beam search with N beams (the model's own repetition "
              "penalty for beam search unless given). The answer is printed when the search ends.")
@click.option("--temperature", type=click.FloatRange(min=0), help="Sampling temperature (0 = greedy).")
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), help="Sampling: nucleus mass.")
@click.option("--top-k", type=click.IntRange(min=0), help="Sampling: keep the K best tokens (0 = all).")
@click.option("--repetition-penalty", type=click.FloatRange(min=0, min_open=True),
              help="HF repetition penalty over the generated tokens (1 = off).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the sampler (same seed, same answer).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--stop", multiple=True, metavar="TEXT", help="Stop once the answer contains TEXT. Repeatable.")
@_runtime_options
@click.option("--json", "as_json", is_flag=True,
              help="Print {prompt_token_ids, token_ids, text} as JSON (one line per answer).")
def chat(bundle: str, prompt: str | None, image: str | None, greedy: bool, sample: bool, num_beams: int | None,
         temperature: float | None, top_p: float | None, top_k: int | None, repetition_penalty: float | None,
         seed: int | None, max_new_tokens: int, stop: tuple[str, ...], device: str, ov_config: tuple[str, ...],
         cache_dir: str | None, as_json: bool) -> None:
    """Chat with a bundle: one answer when PROMPT is given, else an interactive session on stdin.

    \b
    Interactive commands: /image PATH, /noimage, /clear, /regen, /help, /exit.
    Answers go to stdout, the prompt and status lines to stderr.
    """
    from ovexport.runtime.chat_cli import build_config, interactive, one_shot

    from ovexport.models.registry import family_for

    try:  # the bundle's decoding defaults, read before compiling anything: a bad flag fails at once
        presets = family_for(Path(bundle)).runtime(Path(bundle)).generation_presets
        pipe = None
    except OvexportError:  # not a bundle: loading it says why
        pipe = _load_pipeline(bundle, device, ov_config, cache_dir)
        presets = pipe.adapter.generation_presets
    config = build_config(presets, greedy=greedy, sample=sample, num_beams=num_beams, temperature=temperature,
                          top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty, seed=seed,
                          max_new_tokens=max_new_tokens, stop=stop)
    pipe = pipe or _load_pipeline(bundle, device, ov_config, cache_dir)
    img = pipe.load_image(image) if image is not None else None
    _warn_if_unvalidated(bundle)
    if prompt is not None:
        one_shot(pipe, prompt, img, config, as_json)
    else:
        warming = pipe.warmup(background=True)  # the first inference is slow: do it while the user types
        interactive(pipe, img, config, as_json,
                    err=lambda msg: err_console.print(msg, highlight=False, markup=False, soft_wrap=True))
        warming.join()  # never leave an inference running at interpreter exit


@cli.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. The default serves this machine only; 0.0.0.0 exposes the model to the network.")
@click.option("--port", type=click.IntRange(min=1, max=65535), default=7860, show_default=True)
@_runtime_options
def serve(bundle: str, host: str, port: int, device: str, ov_config: tuple[str, ...], cache_dir: str | None) -> None:
    """Serve a Gradio chat app (upload an image, ask, streamed answers) for a bundle."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise OvexportError("gradio is not installed", fix="pip install 'ovexport[serve]'") from None
    from ovexport.runtime.serve import serve as run_server

    pipe = _load_pipeline(bundle, device, ov_config, cache_dir)
    _warn_if_unvalidated(bundle)
    err_console.print("warming up the models...", highlight=False)
    pipe.warmup()
    console.print(f"serving {bundle} on http://{host}:{port} (Ctrl-C to stop)", highlight=False)
    run_server(pipe, host=host, port=port, echo=lambda m: err_console.print(m, highlight=False, markup=False))


@cli.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--runs", type=click.IntRange(min=1), default=3, show_default=True, help="Measured runs per image.")
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True, help="Unmeasured runs first.")
@click.option("--max-new-tokens", type=click.IntRange(min=2), default=64, show_default=True,
              help="Tokens decoded per run (EOS is ignored until then).")
@_runtime_options
@click.option("--baseline", default=None, metavar="notebook|genai|BUNDLE",
              help="Also run, interleaved with ours and in its own process, either the published OpenVINO notebook's "
                   "way over the same IRs (`notebook`: each image piece encoded alone, whole-sequence logits, "
                   "transformers' generate), openvino.genai's VLMPipeline on the same bundle (`genai`), or another bundle through "
                   "our runtime (a directory: an A/B of two compression settings); report ours/baseline.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON instead of a table.")
def bench(bundle: str, runs: int, warmup: int, max_new_tokens: int, device: str, ov_config: tuple[str, ...],
          cache_dir: str | None, baseline: str | None, as_json: bool) -> None:
    """Vision-encode time, time to first token, decode tokens/s and peak RSS on the synthetic images the
    bundle's model family names (e.g. one it takes whole and one it cuts into pieces)."""
    from ovexport.models.registry import family_for
    from ovexport.runtime.bench_harness import run_bench
    from ovexport.runtime.bench_inputs import bench_cases
    from ovexport.runtime.bench_tables import baseline_table, table

    pipe = _load_pipeline(bundle, device, ov_config, cache_dir)
    progress = None if as_json else (lambda m: err_console.print(m, highlight=False, markup=False))
    result = run_bench(pipe, bench_cases(family_for(Path(bundle))), runs=runs, warmup=warmup,
                       max_new_tokens=max_new_tokens, progress=progress, baseline=baseline)
    if as_json:
        click.echo(json.dumps(result))
    else:
        console.print(table(result))
        if "baseline" in result:
            console.print(baseline_table(result))


@cli.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--checkpoint", type=click.Path(file_okay=False), help="PyTorch checkpoint to compare with "
              "(default: the one recorded in manifest.json).")
@click.option("--device", default=None, help="Device (default: the recipe's validation device).")
@click.option("--runtime", type=click.Choice(["ovexport", "genai"]), default="ovexport", show_default=True,
              help="genai: re-run the end-to-end check through openvino.genai's VLMPipeline instead of the parity "
                   "checks (needs openvino-genai).")
def validate(bundle: str, checkpoint: str | None, device: str | None, runtime: str) -> None:
    """Re-hash a bundle's files against manifest.json, then re-run the parity checks."""
    from ovexport.validators.bundle_check import revalidate_bundle
    from ovexport.validators.run_checks import raise_if_failed, verdict

    checks = ["genai_end_to_end"] if runtime == "genai" else None
    report = revalidate_bundle(Path(bundle), Path(checkpoint) if checkpoint else None, device, console, checks)
    raise_if_failed(report)
    console.print(verdict(report), highlight=False, soft_wrap=True)  # passed, or not gated (and what)


@cli.command()
@click.argument("bundle", type=click.Path(file_okay=False, exists=True))
@click.option("--repo-id", required=True, metavar="ORG/NAME", help="Hugging Face model repo to publish to.")
@click.option("--private/--public", default=None, help="Visibility of a repo this creates (default: the Hub's).")
@click.option("--revision", metavar="BRANCH", help="Branch to commit to (default: main).")
@click.option("--create-pr", is_flag=True, help="Open a pull request instead of committing to the branch (no tag).")
@click.option("--dry-run", is_flag=True, help="Print the files, sizes, target and tag; upload nothing.")
@click.option("--allow-unvalidated", is_flag=True, help="Publish a bundle that was never validated (a failed "
              "validation is never published).")
@click.option("--allow-ungated", is_flag=True, help="Publish a bundle whose validation is not gated (a part was "
              "measured but compared with no threshold); its card says which.")
@click.option("--compare", "compare", type=click.Path(exists=True), metavar="DIR|compare.json",
              help="Put the figures of an `ovexport compare` that scored this bundle's IRs on the published card "
                   "(the bundle itself never holds them).")
def publish(bundle: str, repo_id: str, private: bool | None, revision: str | None, create_pr: bool, dry_run: bool,
            allow_unvalidated: bool, allow_ungated: bool, compare: str | None) -> None:
    """Publish a bundle to the Hugging Face Hub: one commit with every file, tagged v<version>.

    The token comes from HF_TOKEN or `hf auth login`. Publishing a version again is a no-op when the tag holds
    the same bundle, and refused when it holds another (versions are immutable).
    """
    from ovexport.publish.hub import publish as publish_bundle
    from ovexport.recipe.schema import REPO_ID_RE

    if not REPO_ID_RE.match(repo_id):
        raise OvexportError(f"{repo_id!r} is not a Hugging Face repo id", fix="use --repo-id <owner>/<name>")
    publish_bundle(bundle, repo_id, private=private, revision=revision, create_pr=create_pr, dry_run=dry_run,
                   allow_unvalidated=allow_unvalidated, allow_ungated=allow_ungated, compare=compare,
                   echo=lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True))


@cli.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, exists=True))
@click.option("--large-runner", metavar="LABEL", default=None,
              help="runner label for the recipes that need more memory or disk than ubuntu-24.04 has")
def matrix(pipeline: str, large_runner: str | None) -> None:
    """Print the release matrix of a pipeline file as JSON for GitHub Actions (one entry per recipe)."""
    from ovexport.publish.matrix import release_matrix

    click.echo(json.dumps(release_matrix(pipeline, large_runner=large_runner or None), separators=(",", ":")))


def main() -> None:
    cli(prog_name="ovexport")


if __name__ == "__main__":
    main()
