"""``ovexport eval``: the click command (registered by ``ovexport.cli``)."""
from __future__ import annotations

import json
from pathlib import Path

import click

EXAMPLES = """
\b
Examples:
  ovexport synth --size tiny --trained /tmp/tiny-trained      # a checkpoint with heldout/questions.jsonl
  ovexport eval dist/RECIPE/VERSION /tmp/tiny-trained/heldout
"""


@click.command("eval", epilog=EXAMPLES)
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON instead of a table.")
@click.option("--runtime", type=click.Choice(["ovexport", "genai"]), default="ovexport", show_default=True,
              help="genai: ask openvino.genai's VLMPipeline on the bundle instead of ovexport's runtime.")
def eval_(bundle: Path, folder: Path, max_new_tokens: int, as_json: bool, runtime: str) -> None:
    """Exact-match accuracy of BUNDLE on the questions of FOLDER (questions.jsonl + images), through the runtime.

    Greedy answers, one fresh conversation per question; overall, per question and for images taken whole ("whole") or split into
    pieces ("pieces").
    To compare compression settings on accuracy, KL divergence and speed, use `ovexport compare`.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ovexport.runtime.pipeline import Pipeline
    from ovexport.util.console import ReadableConsole

    from .exact_match import answered, exact_match, genai_answers

    items = answered(folder)
    if runtime == "genai":
        from ovexport.runtime.genai_runtime import GenaiPipeline
        asker = genai_answers(GenaiPipeline(bundle))
    else:
        asker = Pipeline.load(bundle)
    with Progress(TextColumn("questions"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as prog:
        task = prog.add_task("questions", total=None)
        acc = exact_match(asker, items, max_new_tokens,
                          progress=lambda done, total: prog.update(task, completed=done, total=total))
    if as_json:
        click.echo(json.dumps(acc.to_json(), indent=2))
        return
    table = Table(title=f"exact match: {bundle} ({'openvino.genai VLMPipeline' if runtime == 'genai' else 'ovexport'})")
    for col, justify in (("group", "left"), ("accuracy", "right"), ("right / asked", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for group, a, right, n in acc.rows():
        table.add_row(group, f"{a:.1%}", f"{right}/{n}")
    ReadableConsole().print(table)
    click.echo(f"{len(acc.groups['all'])} questions in {acc.seconds:.1f} s")
