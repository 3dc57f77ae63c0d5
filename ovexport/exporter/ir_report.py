"""``ovexport inspect``: the weight bit-width distribution of every IR of a bundle (or of an IR directory / one
.xml), recomputed from the IR itself.

The table is NNCF's "Statistics of the bitwidth distribution": for each bit width, the share of parameters and
the number of layers over all weights, and over the ratio-defining weights (those ``ratio`` applies to: for
int4 modes the MatMuls without the last one, the lm_head backup layer, unless all_layers). The policy comes
from the bundle's manifest.json or compression.json; without one it is inferred from the IR (BENCHMARKS.md
compares these figures with the ones NNCF printed for a published notebook's model).
"""
from __future__ import annotations

import json
from pathlib import Path

from ovexport.bundle.layout import COMPRESSION, MANIFEST
from ovexport.errors import InputError
from ovexport.parts import IR_FILES as KNOWN_IRS, PARTS

from .inspect import count_weights, format_table, infer_policy, ratio_defining_layers, weight_bit_stats, weight_layers

PART_OF_IR = {p.ir_file: p.key for p in PARTS}


def part_of(xml_name: str, records: dict) -> str | None:
    """The part an IR holds: as compression.json / the manifest records it (``files``), else by its usual name."""
    for key, record in records.items():
        if xml_name in (record.get("files") or ()):
            return key
    return PART_OF_IR.get(xml_name)


def find_irs(path: Path) -> list[Path]:
    """The IRs to report on: the bundle's parts first, then any other .xml of the directory."""
    if path.is_file():
        if path.suffix != ".xml":
            raise InputError(f"{path} is not an OpenVINO .xml file", fix="pass a bundle directory, an IR directory "
                                                                          "or an .xml file")
        return [path]
    if not path.is_dir():
        raise InputError(f"{path} does not exist", fix="pass a bundle directory, an IR directory or an .xml file")
    irs = [path / n for n in KNOWN_IRS if (path / n).is_file()]
    irs += sorted(p for p in path.glob("*.xml") if p.name not in KNOWN_IRS and not _extension_ops(p))
    if not irs:
        raise InputError(f"no OpenVINO IR (*.xml) in {path}", fix="pass a bundle directory (`ovexport run` prints it)")
    return irs


def _extension_ops(xml: Path) -> bool:
    """Whether an IR uses operations of an extension (a bundle's tokenizer and detokenizer: openvino-tokenizers'
    operations, no weights to report; OpenVINO cannot read them without that extension loaded)."""
    return 'version="extension"' in xml.read_text(errors="replace")


def recorded_compression(directory: Path) -> dict:
    """Per-part compression records of a bundle (manifest.json) or of a compressed_ir dir (compression.json)."""
    manifest = directory / MANIFEST
    if manifest.is_file():
        data = json.loads(manifest.read_text()).get("compression") or {}
        if data:
            return data
    comp = directory / COMPRESSION
    if comp.is_file():
        return json.loads(comp.read_text())
    return {}


def describe_policy(policy: dict | None, inferred: bool) -> str:
    """"int4_sym, group 64, ratio 0.6, awq" (prefixed "inferred from the IR: " when ``inferred``)."""
    if not policy:
        return "not compressed"
    bits = [str(policy.get("mode"))]
    if str(policy.get("mode", "")).startswith("int4"):
        if policy.get("group_size") is not None:
            bits.append(f"group {policy['group_size']}")
        if policy.get("ratio") is not None:
            bits.append(f"ratio {policy['ratio']}")
        if policy.get("all_layers"):
            bits.append("all layers")
        if policy.get("backup_mode"):
            bits.append(f"backup {policy['backup_mode']}")
    for opt in ("awq", "scale_estimation", "gptq", "lora_correction"):
        if policy.get(opt):
            bits.append(opt)
    if policy.get("sensitivity_metric"):
        bits.append(f"sensitivity {policy['sensitivity_metric']}")
    return ("inferred from the IR: " if inferred else "") + ", ".join(bits)


def analyse(xml: Path, records: dict) -> dict:
    """The report of one IR: its policy (recorded in ``records``, else inferred), weights per bit width, rows."""
    import openvino as ov

    layers = weight_layers(ov.Core().read_model(xml))
    part = part_of(xml.name, records)
    record = records.get(part) if part else None
    if record is not None and xml.name in (record.get("irs") or {}):   # a part held in several IRs
        record = record["irs"][xml.name]
    inferred = record is None
    policy = record.get("policy") if record is not None else infer_policy(layers)
    stats = weight_bit_stats(layers)
    ratio = ratio_defining_layers(layers, policy)
    ratio_stats = count_weights(ratio) if ratio is not None else None
    return {"ir": xml.name, "part": part, "policy": policy, "policy_inferred": inferred,
            "description": describe_policy(policy, inferred and policy is not None),
            "weights": stats, "ratio_defining": ratio_stats, "rows": format_table(stats, ratio_stats),
            "total_params": sum(v["params"] for v in stats.values()),
            "total_layers": sum(v["layers"] for v in stats.values()),
            "nncf_table": record.get("nncf_table") if record else None}


HEADER = ["Weight compression mode", "% all parameters (layers)", "% ratio-defining parameters (layers)"]


def _size(r: dict) -> str:
    n = r["total_layers"]
    return f"{n} weight layer{'' if n == 1 else 's'}, {r['total_params']:,} parameters"


def render_text(r: dict) -> str:
    header = HEADER if r["ratio_defining"] is not None else HEADER[:2]
    rows = r["rows"]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: ("  " + " | ".join(c.ljust(w) for c, w in zip(cells, widths))).rstrip()  # noqa: E731
    out = [f"{r['ir']}  ({r['description']}; {_size(r)})",
           line(header), "  " + "-+-".join("-" * w for w in widths)]
    out += [line(row) for row in rows]
    return "\n".join(out)


def render_markdown(r: dict) -> str:
    header = HEADER if r["ratio_defining"] is not None else HEADER[:2]
    out = [f"**{r['ir']}** ({r['description']}; {_size(r)})",
           "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in r["rows"]]
    return "\n".join(out)


def inspect_path(path: Path) -> list[dict]:
    """One report per IR of ``path`` (a bundle, an IR directory or one .xml)."""
    irs = find_irs(path)
    records = recorded_compression(path if path.is_dir() else path.parent)
    return [analyse(x, records) for x in irs]


def render(results: list[dict], markdown: bool = False, nncf: bool = False) -> str:
    """The reports as text tables (or markdown, for BENCHMARKS.md); ``nncf``: with the table NNCF logged."""
    blocks = []
    for r in results:
        text = render_markdown(r) if markdown else render_text(r)
        if nncf and r["nncf_table"]:
            text += "\n\n  NNCF logged:\n" + "\n".join("  " + ln for ln in r["nncf_table"].splitlines())
        blocks.append(text)
    return "\n\n".join(blocks)
