#!/usr/bin/env python
"""Export benchmark: ovexport's staged run vs the published notebook's method, on one checkpoint.

Both start from the same checkpoint (the full-size synthetic one by default, already written by the
recipe's download step) and produce the same three IRs with the LLM stateful and INT4_SYM g64 r0.6:

* ``ours``: ``ovexport run <recipe> --until compress --force convert_text_embeddings ...`` (each heavy
  step in its own process, parts loaded one at a time in 16-bit, weights shared with OpenVINO);
* ``baseline``: the notebook's method in ONE process: the whole model loaded in fp32, each part traced
  in fp32 and saved as fp16 IR, the LLM made stateful, read back and compressed with NNCF.

Prints wall time and peak RSS of each (peak RSS of the process tree, sampled every 0.1 s).
Usage: python benchmarks/bench_export.py [--recipe recipes/synthetic-full-minicpmv2-int4.yaml] [--skip-baseline]
       [--set output.root=DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
EXPORT_STEPS = ["convert_text_embeddings", "convert_llm", "make_stateful", "convert_image_encoder", "compress"]


def measure(cmd: list[str], env: dict | None = None) -> tuple[float, int, int, int]:
    """(wall seconds, peak PSS of the process tree, peak RSS of its largest process, exit code).

    PSS (proportional set size) counts a page shared by n processes as 1/n in each: the sum over the
    tree is the memory the run really holds (a plain RSS sum counts the fork server's torch pages
    once per process). The largest single-process peak RSS is the figure to compare with a
    one-process method.
    """
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak_pss = peak_rss = 0
    while proc.poll() is None:
        pss = 0
        for p in [root, *root.children(recursive=True)]:
            try:
                info = p.memory_full_info()
            except psutil.Error:
                continue
            pss += info.pss
            peak_rss = max(peak_rss, info.rss)
        peak_pss = max(peak_pss, pss)
        time.sleep(0.2)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode:
        sys.stderr.write(err[-3000:])
    return time.monotonic() - t0, peak_pss, peak_rss, proc.returncode


BASELINE = r'''
import sys, torch, openvino as ov, nncf
from pathlib import Path
from ovexport.models.minicpmv2 import export as ex
from ovexport.models.minicpmv2.config import MiniCPMV2Config
from ovexport.models.minicpmv2.parts import load_model, TextEmbeddings
from ovexport.exporter.stateful import make_stateful
ckpt, out = Path(sys.argv[1]), Path(sys.argv[2])
cfg = MiniCPMV2Config.from_dir(ckpt)
model = load_model(ckpt, cfg, torch.float32)               # the whole model, fp32, as the notebook loads it
specs = {"text_embeddings": ex.text_embeddings_spec(ckpt, cfg, torch.float32),
         "llm": ex.language_model_spec(ckpt, cfg, torch.float32),
         "image_encoder": ex.image_encoder_spec(ckpt, cfg, torch.float32)}
emb = TextEmbeddings(cfg); emb.embed_tokens = model.llm.model.embed_tokens
modules = {"text_embeddings": emb, "llm": ex.LanguageModelForExport(model.llm),
           "image_encoder": model.image_encoder}
with torch.no_grad():
    for part, spec in specs.items():
        m = ov.convert_model(modules[part], example_input=spec.example_input)
        for port, name in zip(m.inputs, spec.input_names): port.get_tensor().set_names({name})
        for port, name in zip(m.outputs, spec.output_names): port.get_tensor().set_names({name})
        if spec.stateful: make_stateful(m, spec.stateful)
        ov.save_model(m, out / spec.filename)               # compress_to_fp16=True by default
        del m
llm = ov.Core().read_model(out / specs["llm"].filename)
llm = nncf.compress_weights(llm, mode=nncf.CompressWeightsMode.INT4_SYM, group_size=64, ratio=0.6)
ov.save_model(llm, out / "int4.xml")
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=str(REPO / "recipes" / "synthetic-full-minicpmv2-int4.yaml"))
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe override, as ovexport run's (e.g. output.root=/data/mem)")
    args = ap.parse_args()

    from ovexport.engine import work_dir
    from ovexport.recipe.load import load_recipe

    recipe = load_recipe(args.recipe, overrides=args.overrides)
    sets = [a for o in args.overrides for a in ("--set", o)]
    ovx = [sys.executable, "-m", "ovexport.cli"]
    # the checkpoint first (not timed: the notebook downloads it, we synthesise it)
    wall, _, _, rc = measure([*ovx, "run", args.recipe, *sets, "--until", "download"])
    if rc:
        sys.exit(f"download step failed ({rc})")
    ckpt = work_dir(recipe) / "checkpoint"

    forced = [a for s in EXPORT_STEPS for a in ("--force", s)]
    wall, pss, rss, rc = measure([*ovx, "run", args.recipe, *sets, "--until", "compress", *forced])
    if rc:
        sys.exit(f"ovexport run failed ({rc})")
    lock = json.loads((work_dir(recipe) / "ovexport.lock.json").read_text())["steps"]
    rows = [("ovexport (staged, part by part)", wall, pss, rss)]
    print(f"{'step':<28}{'time s':>10}{'peak RSS GB':>14}")
    for s in EXPORT_STEPS:
        e = lock[s]
        print(f"{s:<28}{e['duration_s']:>10.1f}{e['peak_rss_bytes'] / 1e9:>14.2f}")

    if not args.skip_baseline:
        with tempfile.TemporaryDirectory(dir=work_dir(recipe).parent) as out:
            script = Path(out) / "baseline.py"
            script.write_text(BASELINE)
            wall_b, pss_b, rss_b, rc = measure([sys.executable, str(script), str(ckpt), out])
            rows.append(("notebook method (one process, fp32)" + (" FAILED" if rc else ""), wall_b, pss_b, rss_b))

    print()
    print(f"{'method':<42}{'wall s':>10}{'peak PSS GB (all processes)':>30}{'peak RSS GB (largest)':>24}")
    for name, w, p, r in rows:
        print(f"{name:<42}{w:>10.1f}{p / 1e9:>30.2f}{r / 1e9:>24.2f}")
    print(f"\nmachine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM")


if __name__ == "__main__":
    main()
