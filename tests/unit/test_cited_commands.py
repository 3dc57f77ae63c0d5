"""Every command the documentation cites for a figure runs from a clone: the scripts it names are in the repository,
and every ``ovexport ...`` command line names a real subcommand with options that subcommand has."""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

from ovexport.cli import cli
from ovexport.recipe.source import parse_source
from ovexport.synthetic.sources import heldout_sources

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "BENCHMARKS.md", ROOT / "README.md", ROOT / "benchmarks" / "README.md",
               *(ROOT / "docs").rglob("*.md"), *(ROOT / "recipes").glob("*.yaml")])
# a path with a folder, or a bare shell script, ending in .py or .sh
SCRIPT = re.compile(r"(?<![\w/.-])(/?(?:[\w.-]+/)*[\w.-]+\.sh|/?(?:[\w.-]+/)+[\w.-]+\.py)\b")
OVEXPORT = re.compile(r"(?:^|(?<=[\s(`$]))ovexport\s+([a-z][\w-]*)((?:\s+[^\s|;&#)`]+)*)")
OPTION = re.compile(r"(?:^|\s)(--[a-z][\w-]*)")


def text_of(path: Path) -> str:
    """The prose a reader sees: a recipe's comments (its values are not commands), a document's whole text; shell
    line continuations joined."""
    text = path.read_text()
    if path.suffix == ".yaml":
        text = "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)
    return re.sub(r"\\\n\s*", " ", text)


def commands(text: str) -> list[str]:
    """Inline code spans (they may wrap across lines) and the lines of fenced code blocks."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    rest = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    spans = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", rest)]
    return spans + [line.split(" # ")[0] for b in blocks for line in b.splitlines()]


def cited_scripts(path: Path) -> set[str]:
    return set(SCRIPT.findall(text_of(path)))


REPO_FILES = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]


def exists(cited: str) -> bool:
    """A repository file, named from the root or by its last folders (``synthetic/vqa_task.py``); nothing outside."""
    return not cited.startswith("/") and any(f == cited or f.endswith("/" + cited) for f in REPO_FILES)


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_cited_scripts_are_in_the_repository(path):
    missing = sorted(s for s in cited_scripts(path) if not exists(s))
    assert not missing, f"{path.relative_to(ROOT)} cites scripts that are not in the repository: {missing}"


def ovexport_calls(path: Path) -> list[tuple[str, list[str], str]]:
    calls = []
    for cmd in commands(text_of(path)):
        for m in OVEXPORT.finditer(cmd):
            calls.append((m.group(1), OPTION.findall(m.group(2)), m.group(0)))
    return calls


def has_heldout(call: str) -> bool:
    """Whether ``compare RECIPE`` without --eval finds a held-out set: only some synthetic sources write one.
    A recipe that is not a file of the repository (a placeholder such as RECIPE) is not judged."""
    words = call.split()
    recipe = ROOT / words[2] if len(words) > 2 else None
    if recipe is None or recipe.suffix != ".yaml" or not recipe.is_file() or "source=" in call:
        return True
    src = parse_source(str(yaml.safe_load(recipe.read_text())["source"]), recipe.parent)
    return src.kind == "synthetic" and src.size in heldout_sources()


def options_of(command: click.Command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_cited_ovexport_commands_exist(path):
    ctx = click.Context(cli)
    wrong = []
    for name, opts, call in ovexport_calls(path):
        command = cli.get_command(ctx, name)
        if command is None:
            wrong.append(f"no subcommand {name!r}: {call}")
            continue
        if isinstance(command, click.Group):
            continue
        unknown = [o for o in opts if o not in options_of(command)]
        if unknown:
            wrong.append(f"`ovexport {name}` has no {unknown}: {call}")
        if name == "compare" and not ({"--eval", "--dataset"} & set(opts)) and not has_heldout(call):
            wrong.append(f"the checkpoint has no held-out set, so this compare needs --eval or --dataset: {call}")
    assert not wrong, f"{path.relative_to(ROOT)}:\n" + "\n".join(wrong)


def test_the_checks_catch_what_they_are_for(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("Command (script `/work/data/s6/cands.sh`), then `scripts/compression_report.py`:\n"
                   "```\novexport compare RECIPE --variant x \\\n  --no-such-flag\novexport nosuch BUNDLE\n```\n"
                   "`ovexport bench BUNDLE --runs 3` and `python benchmarks/trained_compare.py grid`.\n")
    assert cited_scripts(doc) == {"/work/data/s6/cands.sh", "scripts/compression_report.py",
                                  "benchmarks/trained_compare.py"}
    assert sorted(s for s in cited_scripts(doc) if not exists(s)) == ["/work/data/s6/cands.sh",
                                                               "scripts/compression_report.py"]
    calls = ovexport_calls(doc)
    assert sorted((n, o) for n, o, _ in calls) == [("bench", ["--runs"]), ("compare", ["--variant", "--no-such-flag"]),
                                                    ("nosuch", [])]
    assert not has_heldout("ovexport compare recipes/synthetic-full-minicpmv2-int4.yaml --speed")
    assert has_heldout("ovexport compare recipes/tiny-trained-minicpmv2-fp32.yaml --speed")
    ctx = click.Context(cli)
    assert cli.get_command(ctx, "nosuch") is None
    assert "--no-such-flag" not in options_of(cli.get_command(ctx, "compare"))
    assert "--runs" in options_of(cli.get_command(ctx, "bench"))
