"""A compare's results as a rich table, ``compare.json``, ``compare.csv``, a PNG plot and a Markdown summary.

Rows are ranked by teacher-forced mean KL divergence (the reference first); the Pareto front is the set of
variants that no other variant beats on both LLM size and accuracy (task accuracy where the eval set has
answers, else exact match with the reference's answers).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from rich.table import Table

from ovexport.engine.atomic import atomic_write_text

COLUMNS = [  # (key, header, format)
    ("label", "variant", "{}"),
    ("kl_mean", "KL mean", "{:.4g}"),
    ("kl_p99", "KL p99", "{:.4g}"),
    ("kl_max", "KL max", "{:.4g}"),
    ("kl_vs_first", "KL x first", "{:.2f}"),
    ("kl_vs_first_ci", "95% CI", "{}"),
    ("top1_agreement", "top-1", "{:.3f}"),
    ("ppl_ratio", "PPL ratio", "{:.4f}"),
    ("exact_match", "exact vs ref", "{:.3f}"),
    ("rougeL", "ROUGE-L", "{:.3f}"),
    ("task_accuracy", "task acc", "{:.3f}"),
    ("llm_mb", "LLM MB", "{:.2f}"),
    ("size_mb", "IRs MB", "{:.2f}"),
    ("llm_compressed_pct", "LLM compressed %", "{:.1f}"),
    ("ttft_ms", "TTFT ms", "{:.1f}"),
    ("decode_tok_s", "decode tok/s", "{:.1f}"),
    ("ttft_vs_first", "TTFT x first", "{:.2f}"),
    ("decode_vs_first", "decode x first", "{:.2f}"),
]


def flat_row(v: dict) -> dict:
    m, c, s = v.get("metrics", {}), v.get("cost", {}), v.get("speed") or {}
    row = {"label": v["label"], "name": v.get("name", ""), **{k: m.get(k) for k in
           ("kl_mean", "kl_p99", "kl_max", "top1_agreement", "ppl_ratio", "exact_match", "rougeL", "task_accuracy")}}
    k = v.get("kl_vs_first")
    if k:
        row["kl_vs_first"], row["kl_vs_first_lo"], row["kl_vs_first_hi"] = k["ratio"], k["lo"], k["hi"]
        row["kl_vs_first_ci"] = f"{k['lo']:.2f}-{k['hi']:.2f}" if k.get("level") else "(first)"
    if c:
        row["llm_mb"] = c["llm_bytes"] / 1e6
        row["size_mb"] = c["size_bytes"] / 1e6
        row["llm_bytes_per_token"] = c["llm_bytes_per_token"]
        row["llm_compressed_pct"] = 100 * c["llm_compressed_share"]
        row["llm_int4_pct"] = 100 * c["llm_int4_share"]
    if s:
        row["ttft_ms"] = s.get("ttft_ms")
        row["decode_tok_s"] = s.get("decode_tokens_per_s")
        # ours / the first variant's, from runs interleaved with it (the first variant itself: 1)
        r = next(iter(s["first"]["ratios"].values())) if s.get("first") else {"ttft": 1.0, "decode_tokens_per_s": 1.0}
        row["ttft_vs_first"], row["decode_vs_first"] = r.get("ttft"), r.get("decode_tokens_per_s")
    row["overrides"] = " ".join(v.get("overrides", []))
    return row


def accuracy_of(row: dict) -> float | None:
    acc = row.get("task_accuracy")
    return acc if acc is not None else row.get("exact_match")


def ranked(rows: list[dict]) -> list[dict]:
    def key(r: dict):
        kl = r.get("kl_mean")
        return (0 if r.get("is_reference") else 1, math.inf if kl is None or kl != kl else kl)
    return sorted(rows, key=key)


def pareto(rows: list[dict]) -> set[str]:
    """Labels of the rows no other row beats on LLM size (smaller) and accuracy (higher), both at least equal."""
    pts = [(r["label"], r.get("llm_mb"), accuracy_of(r)) for r in rows
           if not r.get("is_reference") and r.get("llm_mb") is not None and accuracy_of(r) is not None]
    front = set()
    for lab, size, acc in pts:
        dominated = any((s2 <= size and a2 >= acc) and (s2 < size or a2 > acc) for l2, s2, a2 in pts if l2 != lab)
        if not dominated:
            front.add(lab)
    return front


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return spec.format(value)


def table(rows: list[dict], title: str) -> Table:
    front = pareto(rows)
    have = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    t = Table(title=title, title_justify="left")
    for key, header, _ in have:
        t.add_column(header, justify="left" if key == "label" else "right", no_wrap=key == "label")
    for r in rows:
        cells = [_fmt(r.get(k), f) for k, _, f in have]
        if r["label"] in front:
            cells[0] = f"{cells[0]} [green]*[/green]"
        t.add_row(*cells)
    t.caption = "* Pareto front (LLM size vs accuracy). KL in nats, teacher-forced on the reference's answers."
    return t


def write_csv(rows: list[dict], path: Path) -> None:
    keys = (["label", "name"] + [k for k, _, _ in COLUMNS[1:] if k != "kl_vs_first_ci"]
            + ["kl_vs_first_lo", "kl_vs_first_hi", "llm_bytes_per_token", "llm_int4_pct", "overrides"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k) for k in keys})
    atomic_write_text(path, buf.getvalue())


def write_json(result: dict, path: Path) -> None:
    atomic_write_text(path, json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")


def plot(rows: list[dict], path: Path, title: str) -> Path | None:
    """accuracy and KL against LLM size, the Pareto front joined and marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r.get("llm_mb") is not None]
    if not pts:
        return None
    front = pareto(rows)
    acc_name = "task accuracy" if any(r.get("task_accuracy") is not None for r in pts) else "exact match vs reference"
    # points carry a number; the key under the plots names them (labels beside 20 close points overlap)
    number = {r["label"]: i for i, r in enumerate(pts, 1)}
    # the key in two columns while labels are short, else one (two columns of long labels overlap)
    key_cols = 2 if max(len(r["label"]) for r in pts) <= 60 else 1
    key_rows = -(-len(pts) // key_cols)
    fig = plt.figure(figsize=(12, 4.8 + 0.16 * key_rows))
    grid = fig.add_gridspec(2, 2, height_ratios=(4.8, 0.16 * key_rows + 0.3))
    ax1, ax2, ax_key = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    for r in pts:
        on = r["label"] in front
        n = str(number[r["label"]])
        acc = accuracy_of(r)
        if acc is not None:
            ax1.scatter(r["llm_mb"], acc, c="tab:green" if on else "tab:blue", marker="*" if on else "o", s=90 if on else 30)
            ax1.annotate(n, (r["llm_mb"], acc), fontsize=7, xytext=(3, 3), textcoords="offset points")
        kl = r.get("kl_mean")
        if kl is not None and kl == kl:
            ax2.scatter(r["llm_mb"], max(kl, 1e-9), c="tab:green" if on else "tab:red", marker="*" if on else "o",
                        s=90 if on else 30)
            ax2.annotate(n, (r["llm_mb"], max(kl, 1e-9)), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax_key.axis("off")
    for i, r in enumerate(pts):
        col, row = divmod(i, key_rows)
        star = " *" if r["label"] in front else ""
        label = r["label"] if len(r["label"]) <= 170 else r["label"][:167] + "..."
        ax_key.text(0.5 * col, 1 - (row + 0.5) / key_rows, f"{number[r['label']]:>2}  {label}{star}",
                    fontsize=7, family="monospace", va="center", transform=ax_key.transAxes, clip_on=True)
    fr = sorted((r for r in pts if r["label"] in front), key=lambda r: r["llm_mb"])
    if len(fr) > 1:
        ax1.plot([r["llm_mb"] for r in fr], [accuracy_of(r) for r in fr], "g--", lw=1, label="Pareto front")
        ax1.legend(loc="lower right", fontsize=8)
    ax1.set_xlabel("LLM weights (MB)")
    ax1.set_ylabel(acc_name)
    ax1.set_title("accuracy vs size")
    ax2.set_xlabel("LLM weights (MB)")
    ax2.set_ylabel("mean KL to reference (nats)")
    ax2.set_yscale("log")
    ax2.set_title("divergence vs size")
    fig.suptitle(f"{title}   (* Pareto front)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def markdown(result: dict, rows: list[dict]) -> str:
    """A summary fit for a model card: the eval set, the reference, the table, the Pareto front."""
    front = pareto(rows)
    have = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = [f"### Compression comparison: {result['recipe']}", ""]
    ev = result["evalset"]
    lines.append(f"Eval set: {ev['name']} ({ev['items']} questions{', with answers' if ev['has_answers'] else ''}). "
                 f"Reference: {result['reference']['kind']}. Greedy answers of up to {result['max_new_tokens']} tokens.")
    if result.get("random_weights"):
        lines.append("")
        lines.append("**The checkpoint has random weights: these accuracy figures are noise, not a measure of quality.**")
    lines += ["", "| " + " | ".join(h for _, h, _ in have) + " |", "|" + "|".join("---" for _ in have) + "|"]
    for r in rows:
        cells = [_fmt(r.get(k), f) for k, _, f in have]
        if r["label"] in front:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Bold: on the Pareto front of LLM size vs accuracy. KL: mean/p99/max per-token KL divergence "
              "(nats) from the reference, teacher-forced on the reference's answers; KL x first: mean KL over the "
              "first variant's, with a 95 % paired bootstrap interval over questions; PPL ratio: perplexity of those "
              "answers relative to the reference; exact/ROUGE-L: free generation against the reference's answers.", ""]
    if any(r.get("ttft_ms") is not None for r in rows):
        first = next((v["label"] for v in result.get("variants", []) if v.get("speed")), "the first variant")
        cpu = result.get("cpu") or {}
        lines += [f"Speed (`--speed`, as `ovexport bench`: the first image, {', '.join(cpu.get('flags') or []) or '?'} "
                  f"CPU flags): TTFT and decode tokens/s medians; x first = this variant / {first}, their runs "
                  "interleaved on the same machine (below 1 is faster for TTFT, above 1 for decode).", ""]
    if result.get("machine"):
        lines.append(f"Machine: {result['machine']}.")
    return "\n".join(lines) + "\n"
