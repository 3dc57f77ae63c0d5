"""How far openvino.genai's way of prompting a sliced image takes MiniCPM-V-2 from its own, and which of two
stand-ins is closer: (A) genai's MiniCPM-V-2.6 slice layout (``<slice>U</slice>`` per slice, what a bundle gets
today), or (B) no slicing at all (``max_slice_nums: 0`` in preprocessor_config.json: genai then feeds the source
image alone, resized to about 448x448, as V-2 does for small images).

On the trained tiny fixture's held-out questions (``ovexport synth --size tiny --trained DIR``), each image is
enlarged to a size that V-2 cuts into slices (``--size``, default 896x448: 2x1, and 1344x896: 3x2), and answered
through ovexport's runtime on the bundle three ways: V-2's own prompt (the reference), (A) and (B). Printed per
stand-in: the share of answers equal to the reference's, the mean KL divergence (nats) of the next-token
distributions along the reference's answer (teacher forced), and exact-match accuracy against the task's answers.

    ovexport synth --size tiny --trained /tmp/tt && ovexport run recipes/tiny-trained-minicpmv2-int4.yaml
    python benchmarks/genai_deviation.py dist/tiny-trained-minicpmv2-int4/0.1.0 /tmp/tt/heldout
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

F32 = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}


def teacher_forced_logp(pipe, prepared, tokens: list[int]) -> np.ndarray:
    from ovexport.evaluation.logprobs import log_softmax

    emb = pipe.prefill_embeddings(prepared)
    if len(tokens) > 1:
        emb = np.concatenate([emb, pipe.embed_text(np.asarray([tokens[:-1]], np.int64))], axis=1)
    t, n = emb.shape[1], int(len(prepared.input_ids))
    pipe.models.reset()
    logits = pipe.models.lm_all_logits(np.ascontiguousarray(emb, np.float32), np.ones((1, t), np.int64),
                                       np.arange(t, dtype=np.int64)[None], np.zeros(1, np.int32))
    pipe.models.reset()
    return log_softmax(logits[0, n - 1:n - 1 + len(tokens)]).astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("heldout", type=Path, help="folder with questions.jsonl and its images")
    ap.add_argument("--size", action="append", default=None, metavar="WxH")
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    from PIL import Image

    from ovexport.evaluation.scoring import normalise_answer
    from ovexport.models.minicpmv2.genai_inputs import genai_prepared
    from ovexport.models.minicpmv2.prompt import encode_chat
    from ovexport.runtime.generation import greedy_decode
    from ovexport.runtime.pipeline import Pipeline

    pipe = Pipeline.load(args.bundle, ov_config=F32, slice_logits=False)
    ad = pipe.adapter
    eos = set(ad.eos_ids)
    rows = [json.loads(line) for line in (args.heldout / "questions.jsonl").read_text().splitlines() if line.strip()]
    rows = rows[:args.limit] if args.limit else rows
    sizes = [tuple(int(v) for v in s.split("x")) for s in (args.size or ["896x448", "1344x896"])]
    print(f"bundle {args.bundle}, {len(rows)} held-out questions x {len(sizes)} sizes, greedy "
          f"{args.max_new_tokens} tokens, f32")
    print()
    print("| image size | grid | prompt | answers equal to V-2's | mean KL vs V-2 (nats) | accuracy |")
    print("|---|---|---|---|---|---|")
    for w, h in sizes:
        stats = {k: {"same": 0, "kl": [], "right": 0} for k in ("V-2 (ovexport)", "A: genai's 2.6 layout",
                                                                 "B: no slicing")}
        grid = None
        for row in rows:
            img = Image.open(args.heldout / row["image"]).convert("RGB").resize((w, h), Image.BICUBIC)
            msgs = [{"role": "user", "content": row["question"]}]
            own = ad.prepare(msgs, img)
            grid = own.grid
            variants = {"V-2 (ovexport)": own,
                        "A: genai's 2.6 layout": genai_prepared(own, ad.tokenizer, int(ad.config.query_num)),
                        "B: no slicing": encode_chat(ad.tokenizer, msgs, img, config=ad.config, max_slice_nums=1)}
            answers = {k: greedy_decode(pipe.models, pipe.prefill_embeddings(p), pipe.embed_text, eos,
                                        args.max_new_tokens) for k, p in variants.items()}
            ref = answers["V-2 (ovexport)"]
            ref_logp = teacher_forced_logp(pipe, own, ref)
            for k, p in variants.items():
                s = stats[k]
                s["same"] += answers[k] == ref
                logp = teacher_forced_logp(pipe, p, ref)
                s["kl"].append(float(np.mean(np.sum(np.exp(ref_logp) * (ref_logp - logp), axis=-1))))
                text = ad.tokenizer.decode([t for t in answers[k] if t not in eos])
                s["right"] += normalise_answer(text) == normalise_answer(row.get("answer"))
        n = len(rows)
        for k, s in stats.items():
            print(f"| {w}x{h} | {grid[0]}x{grid[1] if grid else '-'} | {k} | {s['same']}/{n} | "
                  f"{np.mean(s['kl']):.4f} | {s['right']}/{n} ({100 * s['right'] / n:.1f} %) |")


if __name__ == "__main__":
    main()
