"""The model card (``README.md``) of a bundle, generated from its manifest: Hub metadata, what the bundle is,
how to run it, compression, validation (each metric against its gate), and provenance. Model facts (pipeline
tag, usage, title) come from the model family. Compare figures are no part of a bundle: ``ovexport publish
--compare`` adds them to the published card (``with_figures``).
"""
from __future__ import annotations

from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from ovexport.bundle.manifest import validation_state
from ovexport.validators.status import NOT_GATED, NOT_VALIDATED, PASSED, phrase

CARD = "README.md"


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    return "-" if v is None else str(v)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def compression_tags(manifest: dict) -> list[str]:
    tags = set()
    for part in (manifest.get("compression") or {}).values():
        mode = str((part.get("policy") or {}).get("mode") or "")
        if mode:
            tags.add(mode.split("_")[0])                      # int4_sym -> int4, int8_static -> int8
        for bits, w in (part.get("weights") or {}).items():
            if bits != "float" and (w or {}).get("layers"):
                tags.add(bits)
    return sorted(tags)


def compression_section(manifest: dict) -> str:
    comp = manifest.get("compression") or {}
    if not comp:
        return "No part is compressed: every weight keeps the export precision " \
               f"({manifest.get('recipe', {}).get('export', {}).get('weight_dtype', '?')})."
    rows = []
    for part, c in comp.items():
        p = c.get("policy") or {}
        w = c.get("weights") or {}
        dist = c.get("distribution") or {}
        rows.append([part, p.get("mode"), p.get("group_size"), p.get("ratio"),
                     *(f"{(w.get(b) or {}).get('layers', 0)} ({(dist.get(b) or {}).get('params_pct', 0)}%)"
                       for b in ("int4", "int8", "float"))])
    return _table(["part", "mode", "group size", "ratio", "int4 layers (% params)", "int8 layers (% params)",
                   "float layers (% params)"], rows)


def compression_parameters(manifest: dict) -> str:
    """The parameters of each compressed part as the OpenVINO organisation's cards give them: the NNCF call and
    its arguments, one bullet each."""
    comp = {part: c for part, c in (manifest.get("compression") or {}).items() if c.get("policy")}
    if not comp:
        return ""
    keys = ("mode", "ratio", "group_size", "sensitivity_metric", "all_layers", "awq", "scale_estimation", "gptq",
            "lora_correction", "backup_mode", "dataset")
    out = []
    for part, c in comp.items():
        p = c["policy"]
        call = "nncf.quantize" if str(p.get("mode")) == "int8_static" else "nncf.compress_weights"
        out.append(f"`{part}`: `{call}` with")
        out += [f"* {k}: **{str(p[k]).upper() if k == 'mode' else p[k]}**" for k in keys
                if p.get(k) not in (None, False)]
        if c.get("calibration"):
            cal = c["calibration"]
            out.append(f"* calibration: **{cal.get('source')}**, {cal.get('items')} items")
        out.append("")
    return "\n".join(out)


def ir_files_line(manifest: dict) -> str:
    """The bundle's model IRs, from its file list."""
    names = sorted(f[:-4] for f in (manifest.get("files") or {}) if f.endswith("_model.xml"))
    return ", ".join(f"`{n}`" for n in names) or "the model IRs"


def validation_section(manifest: dict) -> str:
    v = manifest.get("validation")
    if validation_state(manifest) == NOT_VALIDATED:
        return "**This bundle was not validated**: no parity check against the source model ran."
    rows = []
    for name, c in (v.get("checks") or {}).items():
        gates = {g["metric"]: g for g in c.get("gates") or []}
        for metric, value in (c.get("metrics") or {}).items():
            g = gates.get(metric)
            gate = "-" if g is None else ("<= " if g.get("kind") == "max" else ">= ") + _fmt(g.get("threshold"))
            result = "measured" if g is None else ("pass" if g.get("passed") else "**FAIL**")
            rows.append([name, metric, value, gate, result])
    cfg = ", ".join(f"{k}={v2}" for k, v2 in (v.get("ov_config") or {}).items())
    state, _, what = phrase(v).partition(": ")
    head = f"Validation **{state}**" + (f": {what}" if what else "") \
        + f". The IRs against the PyTorch source model on {v.get('device', 'CPU')}" + (f" ({cfg})" if cfg else "") + "."
    return head + "\n\n" + _table(["check", "metric", "value", "gate", "result"], rows)


def _flat(d: Any, prefix: str = "") -> list[list[Any]]:
    rows: list[list[Any]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            rows += _flat(v, f"{prefix}{k}.")
    elif isinstance(d, (int, float, str, bool)) or d is None:
        rows.append([prefix[:-1], d])
    return rows


def figures_section(title: str, figures: dict | None) -> str:
    if not figures:
        return ""
    return f"## {title}\n\n" + _table(["figure", "value"], _flat(figures)) + "\n"


PROVENANCE = "## Provenance"
COMPARE_TITLE = "Comparison with the source model"


def with_figures(card: str, figures: dict) -> str:
    """``card`` (a bundle's README.md) with a section of compare figures before its provenance."""
    section = figures_section(COMPARE_TITLE, figures)
    head, sep, tail = card.partition(f"\n{PROVENANCE}\n")
    if not sep:
        return card.rstrip() + "\n\n" + section
    return f"{head}\n{section}\n{PROVENANCE}\n{tail}"


def provenance_section(manifest: dict) -> str:
    src = manifest.get("source") or {}
    pk = manifest.get("packages") or {}
    rows = [["source", src.get("repo_id") or src.get("uri")], ["revision", src.get("revision")],
            ["source checkpoint digest", src.get("checkpoint_digest")],
            ["recipe", f"{manifest.get('name')} {manifest.get('version')}"],
            ["ovexport", pk.get("ovexport")], ["OpenVINO", pk.get("openvino")], ["NNCF", pk.get("nncf")],
            ["openvino-tokenizers", pk.get("openvino_tokenizers")], ["torch", pk.get("torch")]]
    return _table(["", ""], [r for r in rows if r[1] is not None])


def render_card(manifest: dict, publishing: Any, repo_id: str | None = None, license: str | None = None) -> str:
    """The README.md text. ``manifest``: the bundle's manifest (files and build record are not used, so the card
    is the same for two builds); ``publishing``: the model family's publishing module."""
    src = manifest.get("source") or {}
    state = validation_state(manifest)
    tags = ["openvino", "ovexport", manifest.get("model_family", ""), *compression_tags(manifest)]
    if state != PASSED:
        tags.append("validation-not-gated" if state == NOT_GATED else "unvalidated")
    data = ModelCardData(
        base_model=src.get("repo_id"), base_model_relation="quantized" if src.get("repo_id") else None,
        library_name="openvino", pipeline_tag=publishing.PIPELINE_TAG, license=license or "other",
        tags=[t for t in tags if t])
    repo = repo_id or f"<owner>/{manifest['name']}"
    warning = "" if state == PASSED else (
        f"\n> **Warning: validation {phrase(manifest.get('validation'))}.** This bundle's outputs were not all shown "
        "to match the source model. `ovexport chat` and `ovexport serve` warn when they load it.\n")
    what = (f"{publishing.TITLE} as OpenVINO IR, built by [ovexport](https://pypi.org/project/ovexport/) from "
            f"`{src.get('repo_id') or src.get('uri')}`" + (f" at revision `{src['revision']}`" if src.get("revision")
                                                          else "") + ". "
            + (manifest.get("recipe", {}).get("description") or "") + "\n\n"
            f"Files: the model's IRs ({ir_files_line(manifest)}), the tokenizer as OpenVINO models "
            "(`openvino_tokenizer.xml`, "
            "`openvino_detokenizer.xml`), `tokenizer_config.json` with its `chat_template`, "
            "`preprocessor_config.json`, `manifest.json` (size and sha256 of every file) and `validation.json`.")
    body = f"""
# {manifest['name']} {manifest['version']}
{warning}
{what}

## How to run it

{publishing.card_usage(repo)}

## Compression

{compression_section(manifest)}

{compression_parameters(manifest)}
## Validation

{validation_section(manifest)}

{PROVENANCE}

{provenance_section(manifest)}

The recipe, as resolved, is in `manifest.json` (`recipe`); `ovexport run` on it rebuilds this bundle file for file.
"""
    text = f"---\n{data.to_yaml()}\n---\n{body}"
    ModelCard(text)  # parses the metadata block: a card the Hub would reject never gets written
    return text.rstrip() + "\n"
