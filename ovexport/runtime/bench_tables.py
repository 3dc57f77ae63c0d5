"""``ovexport bench``'s figures as rich tables: ours per image, and a baseline's beside ours with the ratios."""
from __future__ import annotations


def table(result: dict):
    from rich.table import Table

    t = Table(title=f"ovexport bench: {result['bundle']} on {result['device']} "
                    f"({result['runs']} runs after {result['warmup']} warm-up, {result['max_new_tokens']} new tokens, "
                    f"medians)")
    for col in ("image", "encoder calls", "prompt tokens", "vision encode ms", "prefill ms", "TTFT ms",
                "decode tok/s", "% of bandwidth limit", "peak RSS MB"):
        t.add_column(col, justify="right" if col != "image" else "left", no_wrap=col == "image")
    for name, c in result["cases"].items():
        t.add_row(name, str(c["encoder_calls"]), str(c["prompt_tokens"]), f"{c['vision_ms']:.1f}",
                  f"{c['prefill_ms']:.1f}", f"{c['ttft_ms']:.1f}", f"{c['decode_tokens_per_s']:.1f}",
                  f"{c['decode_pct_of_bandwidth_limit']:.0f}%", f"{c['peak_rss_mb']:.0f}")
    b = result["bandwidth"]
    cpu = result.get("cpu") or {}
    t.caption = (f"load {result['load_s']:.2f} s, RSS after load {result['rss_after_load_mb']:.0f} MB; "
                 f"ov_config {result['ov_config']}; memory read bandwidth {b['read_bandwidth_gb_s']} GB/s measured "
                 f"now / LLM weights {b['llm_weight_bytes'] / 1e9:.2f} GB per token = decode limit "
                 f"{b['decode_limit_tokens_per_s']} tok/s; CPU {cpu.get('model', '?')}, {cpu.get('cores', '?')} cores, "
                 f"flags {' '.join(cpu.get('flags') or []) or '-'}")
    return t


def baseline_table(result: dict):
    """The baseline's medians, and ours / baseline (vision and TTFT: below 1 is faster; decode: above 1)."""
    from rich.table import Table

    base = result["baseline"]
    what = {"notebook": "same IRs, the notebook's way", "genai": "same bundle, openvino.genai's VLMPipeline"}.get(
        base["name"], "another bundle through our runtime")
    t = Table(title=f"baseline: {base['name']} ({what}, same OpenVINO config, its own process, runs interleaved "
                    f"with ours)", caption=f"baseline process peak RSS: {base.get('peak_rss_mb', 0):.0f} MB")
    for col in ("image", "encoder calls", "vision encode ms", "prefill ms", "TTFT ms", "decode tok/s",
                "same tokens", "vision ours/base", "TTFT ours/base", "decode tok/s ours/base"):
        t.add_column(col, justify="right" if col != "image" else "left", no_wrap=col == "image")

    def r(x):
        return "-" if x is None else f"{x:.2f}x"

    for name, c in base["cases"].items():
        q = base["ratios"][name]
        t.add_row(name, str(c.get("encoder_calls", "-")), f"{c['vision_ms']:.1f}", f"{c['prefill_ms']:.1f}",
                  f"{c['ttft_ms']:.1f}", f"{c['decode_tokens_per_s']:.1f}", str(c.get("same_tokens", "-")),
                  r(q["vision"]), r(q["ttft"]), r(q["decode_tokens_per_s"]))
    return t
