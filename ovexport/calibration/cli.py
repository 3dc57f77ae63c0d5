"""``ovexport calibration-set``: the click command (registered by ``ovexport.cli``)."""
from __future__ import annotations

from pathlib import Path

import click

EXAMPLES = """
\b
Examples:
  ovexport calibration-set calib/                         # the builtin set (12 samples)
  ovexport calibration-set calib/ --source hf-dataset:lmms-lab/COCO-Caption:val -n 32
  ovexport calibration-set calib/ --source other_dir/ -n 8
"""


@click.command("calibration-set", epilog=EXAMPLES)
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--source", default="builtin", show_default=True, metavar="builtin|hf-dataset:NAME[:SPLIT]|DIR",
              help="Where the samples come from.")
@click.option("-n", "--num-samples", type=click.IntRange(min=1), help="Samples to write (default: all of builtin, "
              "32 otherwise).")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg", "webp"]), default="png", show_default=True,
              help="Image file format.")
@click.option("--force", is_flag=True, help="Write into a non-empty directory.")
def calibration_set(out: Path, source: str, num_samples: int | None, fmt: str, force: bool) -> None:
    """Write a calibration set as a directory (images + questions.jsonl) a recipe can point at.

    Then, in a recipe: ``calibration: {source: OUT}`` (relative to the recipe file). Useful to look at the
    builtin set, to edit it, or to freeze a Hub subset for offline machines.
    """
    from ovexport.calibration import load_samples
    from ovexport.calibration.builtin import BUILTIN_SIZE
    from ovexport.calibration.local import QUESTIONS, write_local_set
    from ovexport.errors import InputError

    if out.exists() and any(out.iterdir()) and not force:
        raise InputError(f"{out} is not empty", fix="choose another directory or pass --force")
    n = num_samples or (BUILTIN_SIZE if source == "builtin" else 32)
    samples = load_samples(source, n, base_dir=Path.cwd(), log=lambda m: click.echo(m, err=True))
    write_local_set(samples, out, fmt=fmt)
    click.echo(f"wrote {len(samples)} samples to {out} ({QUESTIONS} + images)")
