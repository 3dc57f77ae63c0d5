#!/usr/bin/env python
"""Print the weight bit-width distribution of every IR of a bundle (or of an IR directory / one .xml).

    python scripts/compression_report.py dist/minicpmv2-int4/1.0.0
    python scripts/compression_report.py dist/minicpmv2-int4/1.0.0 --markdown   # for BENCHMARKS.md
    python scripts/compression_report.py path/to/openvino_language_model.xml --json

The table is NNCF's "Statistics of the bitwidth distribution", recomputed from the IR itself: for each bit
width, the share of parameters and the number of layers over all weights, and over the ratio-defining
weights (those ``ratio`` applies to: for int4 modes the MatMuls without the last one, the lm_head backup
layer, unless all_layers). The policy comes from the bundle's manifest.json or compression.json; without
one it is inferred from the IR. For reference, the published OpenVINO notebook's full-size MiniCPM-V-2
language model with INT4_SYM, group 64, ratio 0.6 reported 54% (158 / 281 layers) int4 and 46% (123 / 281)
int8.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ovexport.parts import IR_FILES as KNOWN_IRS, PARTS

PART_OF_IR = {p.ir_file: p.key for p in PARTS}


def find_irs(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix != ".xml":
            raise SystemExit(f"error: {path} is not an OpenVINO .xml file")
        return [path]
    if not path.is_dir():
        raise SystemExit(f"error: {path} does not exist (pass a bundle directory, an IR directory or an .xml file)")
    irs = [path / n for n in KNOWN_IRS if (path / n).is_file()]
    irs += sorted(p for p in path.glob("*.xml") if p.name not in KNOWN_IRS)
    if not irs:
        raise SystemExit(f"error: no OpenVINO IR (*.xml) in {path}")
    return irs


def recorded_compression(directory: Path) -> dict:
    """Per-part compression records of a bundle (manifest.json) or of a compressed_ir dir (compression.json)."""
    manifest = directory / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text()).get("compression") or {}
        if data:
            return data
    comp = directory / "compression.json"
    if comp.is_file():
        return json.loads(comp.read_text())
    return {}


def describe_policy(policy: dict | None, inferred: bool) -> str:
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
    import openvino as ov

    from ovexport.exporter.inspect import (count_weights, format_table, infer_policy, ratio_defining_layers,
                                           weight_bit_stats, weight_layers)

    layers = weight_layers(ov.Core().read_model(xml))
    part = PART_OF_IR.get(xml.name)
    record = records.get(part) if part else None
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", type=Path, help="bundle directory, IR directory (compressed_ir) or one .xml")
    fmt = ap.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="markdown tables (for BENCHMARKS.md)")
    fmt.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--nncf", action="store_true", help="also print the table NNCF logged when it compressed")
    args = ap.parse_args(argv)

    irs = find_irs(args.path)
    records = recorded_compression(args.path if args.path.is_dir() else args.path.parent)
    results = [analyse(x, records) for x in irs]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    render = render_markdown if args.markdown else render_text
    blocks = []
    for r in results:
        text = render(r)
        if args.nncf and r["nncf_table"]:
            text += "\n\n  NNCF logged:\n" + "\n".join("  " + ln for ln in r["nncf_table"].splitlines())
        blocks.append(text)
    print("\n\n".join(blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
