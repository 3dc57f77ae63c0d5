"""The ``ovexport`` command line (click)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

from ovexport import __version__
from ovexport.errors import OvexportError, RecipeError

console = Console(stderr=False)
err_console = Console(stderr=True)

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


class _Group(click.Group):
    """Turns every OvexportError into one red line and a non-zero exit code, never a traceback."""

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
def run(recipe: str, overrides: tuple[str, ...], force: tuple[str, ...], until: str | None) -> None:
    """Run a recipe (or every recipe of a pipeline file): convert, compress, validate, package."""
    import ovexport.steps  # noqa: F401  (registers the steps)
    from ovexport.engine import runner
    from ovexport.engine.report import summary_table

    for r in _load(recipe, overrides):
        console.rule(f"[bold]{r.name}[/] {r.version}  ({r.source})")
        result = runner.run(r, force=force, until=until, console=console)
        console.print(summary_table(result))
        bundle = result.artifacts.get("bundle")
        if bundle is not None:
            console.print(f"bundle: [bold green]{bundle}[/]", highlight=False)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
def check(paths: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """Validate recipes or pipeline files without running anything (all errors at once)."""
    import ovexport.steps  # noqa: F401
    from ovexport.engine import runner

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
                runner.validate(r)
                count += 1
            except OvexportError as e:
                problems.append(f"{p}: {r.name}: {e.line()}")
    if problems:
        raise RecipeError(problems)
    console.print(f"[green]ok[/]: {count} recipe(s) valid")


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--force", multiple=True, metavar="STEP")
@click.option("--until", metavar="STEP")
def plan(recipe: str, overrides: tuple[str, ...], force: tuple[str, ...], until: str | None) -> None:
    """Show the steps of a recipe, their fingerprints and which are up to date."""
    import ovexport.steps  # noqa: F401
    from ovexport.engine import runner
    from ovexport.engine.report import plan_table

    for r in _load(recipe, overrides):
        console.print(plan_table(runner.plan(r, force=force, until=until, console=console)))


@cli.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--size", type=click.Choice(["tiny", "full"]), default="tiny", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--model", "family_name", default="minicpmv2", show_default=True, help="Model family to synthesise.")
def synth(out: str, size: str, seed: int, family_name: str) -> None:
    """Write a synthetic checkpoint (exact real layout, random weights) into OUT."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

    from ovexport.engine.atomic import atomic_dir
    from ovexport.models.registry import get_family

    family = get_family(family_name)
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        raise OvexportError(f"{target} exists and is not empty", fix="choose a new directory or delete it first")
    with Progress("[progress.description]{task.description}", BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as prog:
        task = prog.add_task(f"synthetic {size} checkpoint", total=None)
        with atomic_dir(target) as tmp:
            family.write_synthetic(tmp, size=size, seed=seed,
                                   progress=lambda done, total: prog.update(task, completed=done, total=total))
    console.print(f"wrote {target}")


@cli.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.argument("prompt", required=False)
@click.option("--image", type=click.Path(dir_okay=False), help="Image to ask about.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--greedy", is_flag=True, help="Greedy decoding (always greedy, whatever the default becomes).")
@click.option("--device", default="CPU", show_default=True)
@click.option("--ov-config", multiple=True, metavar="KEY=VALUE", help="OpenVINO property. Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print {prompt_token_ids, token_ids, text} as JSON.")
def chat(bundle: str, prompt: str | None, image: str | None, max_new_tokens: int, greedy: bool, device: str,
         ov_config: tuple[str, ...], as_json: bool) -> None:
    """Chat with a bundle: one-shot when PROMPT is given."""
    from ovexport.runtime.generation import GenerationConfig
    from ovexport.runtime.ov_models import parse_ov_config
    from ovexport.runtime.pipeline import Pipeline

    if prompt is None:
        raise OvexportError("no prompt given", fix='pass the question as an argument: ovexport chat BUNDLE "What is this?"')
    pipe = Pipeline.load(bundle, device=device, ov_config=parse_ov_config(ov_config))
    img = None
    if image is not None:
        from ovexport.models.minicpmv2.slicing import load_image
        img = load_image(image)
    config = GenerationConfig(max_new_tokens=max_new_tokens)
    if as_json:
        result = pipe.chat(prompt, img, config)
        click.echo(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        pipe.chat(prompt, img, config, on_text=lambda t: click.echo(t, nl=False))
        click.echo()


@cli.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--checkpoint", type=click.Path(file_okay=False), help="PyTorch checkpoint to compare with "
              "(default: the one recorded in manifest.json).")
@click.option("--device", default=None, help="Device (default: the recipe's validation device).")
def validate(bundle: str, checkpoint: str | None, device: str | None) -> None:
    """Re-hash a bundle's files against manifest.json, then re-run the parity checks."""
    from ovexport.validators.bundle_check import revalidate_bundle
    from ovexport.validators.runner import raise_if_failed

    report = revalidate_bundle(Path(bundle), Path(checkpoint) if checkpoint else None, device, console)
    raise_if_failed(report)
    console.print("[green]validation passed[/]")


def main() -> None:
    cli(prog_name="ovexport")


if __name__ == "__main__":
    main()
