"""A full training run (``train.train``) with ``TrainSettings`` overrides given as JSON (a "config" key overrides the
checkpoint config), then PyTorch greedy exact match on the held-out set per kind and for sliced/unsliced images,
and the training CPU time (1 thread). Figures: docs/investigations/2026-11-30-trained-fixture-pass3.md (also passes 4 and 5).

    python benchmarks/trained_probe_full.py '{"pretrain_steps": 600, "steps": 1600}'
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import json, sys, time, tempfile
import torch
torch.set_num_threads(1)
from ovexport.models.minicpmv2.trained import task
from ovexport.models.minicpmv2.trained import train as T
from ovexport.models.minicpmv2.synth_tokenizer import write_tokenizer
from ovexport.models.minicpmv2.tokenizer import MiniCPMVTokenizer

over = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
cfg_over = over.pop("config", {})
settings = T.TrainSettings(**over)
cfg = T.trained_config(0); cfg.update(cfg_over)
d = tempfile.mkdtemp(prefix="train3-tok-")
write_tokenizer(d, vocab_size=cfg["vocab_size"], seed=0, words=task.TASK_WORDS)
tok = MiniCPMVTokenizer.from_dir(d)
held = task.heldout_samples(0, settings.heldout_questions)
t0 = time.process_time()
last = [0]
def prog(s, n, loss):
    if s % 200 == 0 or s == n:
        print(f"  step {s}/{n} loss {loss:.3f} cpu {time.process_time()-t0:.0f}s", flush=True)
model, rep = T.train(cfg, tok, 0, {s.key for s in held}, settings, prog)
t1 = time.process_time()
per = {}
sl = {True: [], False: []}
with torch.no_grad():
    for s in held:
        ex = T.make_example(tok, model.config, s.image, [(s.question, s.answer)])
        ok = T.normalise(T.greedy_answer(model, tok, ex)) == T.normalise(s.answer)
        per.setdefault(task.KIND_OF[s.question], []).append(ok); sl[s.sliced_size].append(ok)
allok = [x for v in per.values() for x in v]
print(json.dumps({"over": sys.argv[1] if len(sys.argv) > 1 else "", "train_cpu": round(t1 - t0, 1), "eval_cpu": round(time.process_time() - t1, 1),
                  "all": round(sum(allok) / len(allok), 3), **{k: round(sum(v) / len(v), 3) for k, v in per.items()},
                  "unsliced": round(sum(sl[False]) / len(sl[False]), 3), "sliced": round(sum(sl[True]) / len(sl[True]), 3)}), flush=True)
