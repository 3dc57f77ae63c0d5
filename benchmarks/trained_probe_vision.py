"""The vision side alone on the trained task: the tiny vision tower + resampler + the training's ``ImageProbe``,
trained on the probe's loss over whole-image (overview) encodings, with probe accuracy per kind on the VALIDATION
stream (``task.validation_samples``; never the held-out set, which reports accuracy only) every
``--eval-every`` steps and the CPU time (1 thread). Separate learning rates for the ViT, the resampler's attention
(in_proj, ln_kv) and the rest of the resampler; ``--scene one|count|word`` for one scene kind; ``--vision`` JSON
overrides the tower's timm arguments (e.g. '{"embed_dim": 128, "depth": 4, "num_heads": 4}'). ``--dense W`` adds
``W`` x the loss of a linear classifier of what covers each patch (``fixtures.trained_minicpmv2.dense``: background,
shape, letter) on the tower's patch features, and prints that classifier's validation accuracy on the covered patches too.
Figures: BENCHMARKS.md, "Tiny trained model", third and fourth passes.

    python benchmarks/trained_probe_vision.py --steps 300 --scene word --lr-vit 1e-3 --lr-attn 1e-4 --lr-res 1e-3
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse, json, math, time
import torch, torch.nn.functional as F
torch.set_num_threads(1)
from ovexport.fixtures.trained_minicpmv2 import dense as D
from ovexport.fixtures.trained_minicpmv2 import train as T
from ovexport.models.minicpmv2.config import MiniCPMV2Config
from ovexport.models.minicpmv2.model import MiniCPMV2
from ovexport.models.minicpmv2.slicing import slice_image, to_pixel_values
from ovexport.models.minicpmv2.vision import vision_features
from ovexport.synthetic import vqa_task as task

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=300)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--lr", type=float, default=2e-3)        # probe heads
ap.add_argument("--lr-vit", type=float, default=2e-4)
ap.add_argument("--lr-attn", type=float, default=2e-4)   # resampler attn in_proj + ln_kv
ap.add_argument("--lr-res", type=float, default=2e-4)    # rest of resampler
ap.add_argument("--scene", default=None)                 # one | count | word | None (all)
ap.add_argument("--vision", default=None)                # json vision_config override
ap.add_argument("--queries", type=int, default=16)
ap.add_argument("--eval-every", type=int, default=100)
ap.add_argument("--warmup", type=int, default=50)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--sliced-share", type=float, default=0.5)
ap.add_argument("--dense", type=float, default=0.0)      # weight of the per-patch loss (0: off)
ap.add_argument("--dense-labels", default="letters")     # a word's patches labelled by its letters or by the word
# initialisation of the patch embedding and ViT blocks (TrainSettings.patch_init, patch_init_rms,
# patch_init_scenes, vit_residual_scale); --lr-patch: the patch embedding's own lr (default: --lr-vit)
ap.add_argument("--patch-init", default="default")       # default | pca | dct
ap.add_argument("--patch-rms", type=float, default=0.3)
ap.add_argument("--patch-scenes", type=int, default=128)
ap.add_argument("--residual-scale", type=float, default=1.0)
ap.add_argument("--lr-patch", type=float, default=None)
ap.add_argument("--questions", type=int, default=task.VALIDATION_QUESTIONS)   # validation questions (at most 300)
a = ap.parse_args()
if a.questions > task.VALIDATION_QUESTIONS:
    sys.exit(f"at most {task.VALIDATION_QUESTIONS} validation questions: training skips only those")

cfgd = T.trained_config(0)
if a.vision: cfgd["vision_config"] = {**cfgd["vision_config"], **json.loads(a.vision)}
cfgd["query_num"] = a.queries
config = MiniCPMV2Config.from_dict(cfgd)
torch.manual_seed(a.seed)
model = MiniCPMV2(config); T.init_weights(model, config)
probe = T.ImageProbe(config.hidden_size)
dprobe = D.DenseProbe(model.vpm.embed_dim)
kinds = task.SCENES[a.scene] if a.scene else task.KINDS

def overview(img):
    return to_pixel_values(slice_image(img, config.max_slice_nums, config.scale_resolution, config.patch_size).source)

held = task.validation_samples(a.seed, a.questions)    # "held": held out of training; validation, not the held-out set
exclude = task.reserved_keys(a.seed)
_init_settings = T.TrainSettings(patch_init=a.patch_init, patch_init_rms=a.patch_rms, patch_init_scenes=a.patch_scenes,
                                 vit_residual_scale=a.residual_scale, sliced_share=a.sliced_share)
_t = time.process_time()
T.init_patch_embed(model, config, _init_settings, a.seed, exclude)
print(f"init {a.patch_init} residual x{a.residual_scale}: {time.process_time() - _t:.1f}s cpu", flush=True)
held = [s for s in held if task.KIND_OF[s.question] in kinds]
held_px = [overview(s.image) for s in held]
def targets_of(sc):
    return D.encoder_image_targets(sc.key, sc.image.size, config.scale_resolution, config.patch_size, config.max_slice_nums,
                                   labels=a.dense_labels)[0]
held_tgt = [targets_of(s) for s in held]
held_lab = [(task.KIND_OF[s.question], task.ANSWERS[task.KIND_OF[s.question]].index(s.answer)) for s in held]

stream = task.training_stream(a.seed, exclude, a.sliced_share)
def next_scene():
    while True:
        sc = next(stream)
        if a.scene is None or json.loads(sc.key)[2][0] == {"count": "many"}.get(a.scene, a.scene):
            return sc

res = model.resampler
attn_ids = {id(p) for p in (*res.attn.parameters(), *res.ln_kv.parameters())}
patch_ids = {id(p) for p in model.vpm.patch_embed.parameters()} if a.lr_patch is not None else set()
groups = [
    {"params": [p for p in model.vpm.parameters() if id(p) not in patch_ids], "lr_base": a.lr_vit},
    {"params": [p for p in model.vpm.parameters() if id(p) in patch_ids], "lr_base": a.lr_patch},
    {"params": [p for p in res.parameters() if p.requires_grad and id(p) in attn_ids], "lr_base": a.lr_attn},
    {"params": [p for p in res.parameters() if p.requires_grad and id(p) not in attn_ids], "lr_base": a.lr_res},
    {"params": list(probe.parameters()) + (list(dprobe.parameters()) if a.dense else []), "lr_base": a.lr},
]
groups = [g for g in groups if g["params"]]
opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
params = [p for g in groups for p in g["params"]]
print(json.dumps(vars(a)), flush=True)

def feats_of(pxs):
    """(resampled tokens [Q, D], patch features [h*w, width]) of every image."""
    p = config.patch_size
    by_size = {}
    for i, px in enumerate(pxs):
        by_size.setdefault(px.shape[1:], []).append(i)
    toks, pats = [None] * len(pxs), [None] * len(pxs)
    for (h, w), idx in by_size.items():
        x = torch.from_numpy(__import__("numpy").stack([pxs[i] for i in idx]))
        pf = vision_features(model.vpm, x)
        tk = model.resampler(pf, -(-h // p), -(-w // p))
        for k, i in enumerate(idx):
            toks[i], pats[i] = tk[k], pf[k]
    return toks, pats

@torch.no_grad()
def evaluate():
    model.eval()
    f, pf = feats_of(held_px)
    per, cov = {}, {}
    for (k, lab), ft, pt, tg in zip(held_lab, f, pf, held_tgt):
        pred = int(probe.logits(k, ft[None]).argmax())
        per.setdefault(k, []).append(pred == lab)
        if a.dense:
            on = torch.from_numpy(tg) > 0
            hit = (dprobe.head(pt).argmax(-1) == torch.from_numpy(tg))[on]
            cov.setdefault(k, []).extend(hit.tolist())
    model.train()
    out = {k: round(sum(v) / len(v), 3) for k, v in per.items()}
    if a.dense:
        out["dense"] = {k: round(sum(v) / max(1, len(v)), 3) for k, v in cov.items()}
    return out

t0 = time.process_time()
ema = None
for step in range(a.steps):
    scs = [next_scene() for _ in range(a.batch)]
    pxs = [overview(sc.image) for sc in scs]
    f, pf = feats_of(pxs)
    src, tgt = {}, {}
    for sc, ft in zip(scs, f):
        for q, ans in sc.qa:
            k = task.KIND_OF[q]
            src.setdefault(k, []).append(ft); tgt.setdefault(k, []).append(task.ANSWERS[k].index(ans))
    loss = sum(F.cross_entropy(probe.logits(k, torch.stack(src[k])), torch.tensor(tgt[k]), reduction="sum") for k in src) / sum(len(t) for t in tgt.values())
    if a.dense:
        loss = loss + a.dense * dprobe.loss(pf, [targets_of(sc) for sc in scs])
    frac = min(1.0, (step + 1) / a.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / a.steps)))
    for g in opt.param_groups: g["lr"] = g["lr_base"] * frac
    opt.zero_grad(set_to_none=True); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step()
    ema = float(loss.detach()) if ema is None else 0.95 * ema + 0.05 * float(loss.detach())
    if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
        print(f"step {step+1} loss {ema:.3f} cpu {time.process_time()-t0:.1f}s validation {evaluate()}", flush=True)
