"""``ovexport inspect``: the click command (registered by ``ovexport.cli``)."""
from __future__ import annotations

import json
from pathlib import Path

import click

EXAMPLES = """
\b
Examples:
  ovexport inspect dist/RECIPE/VERSION
  ovexport inspect dist/RECIPE/VERSION --markdown      # for BENCHMARKS.md
  ovexport inspect path/to/openvino_language_model.xml --json
"""


@click.command(epilog=EXAMPLES)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--markdown", "fmt", flag_value="markdown", help="Markdown tables (for BENCHMARKS.md).")
@click.option("--json", "fmt", flag_value="json", help="Machine-readable output.")
@click.option("--nncf", is_flag=True, help="Also print the table NNCF logged when it compressed.")
def inspect(path: Path, fmt: str | None, nncf: bool) -> None:
    """Weight bit-width distribution of every IR of a bundle, IR directory or .xml, as NNCF reports it.

    For each bit width: the share of parameters and layers over all weights and over the ratio-defining ones,
    recomputed from the IR; the policy comes from the bundle's manifest.json or compression.json (else it is
    inferred from the IR).
    """
    from ovexport.exporter.ir_report import inspect_path, render

    results = inspect_path(path)
    if fmt == "json":
        click.echo(json.dumps(results, indent=2))
    else:
        click.echo(render(results, markdown=fmt == "markdown", nncf=nncf))
