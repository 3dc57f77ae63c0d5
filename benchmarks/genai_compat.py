"""Which openvino / openvino-genai releases load an ovexport bundle, and answer as ovexport does.

For each version X.Y.Z, a virtual environment with ``openvino==X.Y.Z openvino-genai==X.Y.Z.0
openvino-tokenizers==X.Y.Z.0`` (made once under ``--venvs``, from PyPI) runs ``VLMPipeline`` greedy on the bundle
(precisions pinned to f32) for two images: 448x448 (not sliced) and 1344x896 (cut 3x2). Its tokens are compared
with ovexport's runtime in this environment: on the model's own input for the unsliced image, on what genai feeds
the model (``genai_prepare``: its slicer's sizes, its slice layout) for the sliced one.

    python benchmarks/genai_compat.py dist/tiny-minicpmv2-int4/0.1.0 --versions 2025.4.1 2026.1.0 2026.4.1

Prints a Markdown table (the model card's "Compatibility" section and docs/genai.md come from it).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

QUESTION = "What is in the image?"
SIZES = {"448x448": (448, 448), "1344x896": (1344, 896)}
F32 = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}

# runs inside each version's environment: only openvino, openvino-genai, numpy and pillow there
CHILD = r"""
import json, sys
import numpy as np, openvino as ov, openvino_genai as og
from PIL import Image
bundle, images, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
out = {"openvino": ov.__version__, "genai": og.__version__}
try:
    pipe = og.VLMPipeline(bundle, "CPU", INFERENCE_PRECISION_HINT="f32", KV_CACHE_PRECISION="f32")
except Exception as e:
    out["error"] = " ".join(str(e).split())[:300]
    print(json.dumps(out)); sys.exit(0)
for name, path in images.items():
    tokens = []
    class S(og.StreamerBase):
        def write(self, t):
            tokens.extend(t if isinstance(t, list) else [t]); return og.StreamingStatus.RUNNING
        def end(self): pass
    cfg = og.GenerationConfig(); cfg.max_new_tokens = n; cfg.do_sample = False
    img = ov.Tensor(np.array(Image.open(path).convert("RGB"))[None])
    try:
        pipe.generate(sys.argv[4], images=[img], generation_config=cfg, streamer=S())
        out[name] = [int(t) for t in tokens]
    except Exception as e:
        out[name] = " ".join(str(e).split())[:300]
print(json.dumps(out))
"""


def venv_python(root: Path, version: str) -> Path:
    env = root / f"ov-{version}"
    py = env / "bin" / "python"
    if not py.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"openvino=={version}", f"openvino-genai=={version}.0",
                        f"openvino-tokenizers=={version}.0", "pillow", "numpy"], check=True)
    return py


def ours(bundle: Path, images: dict[str, Path], n: int) -> dict[str, list[int]]:
    """ovexport's greedy tokens: the model's prompt, and genai's slice layout for sliced images."""
    from PIL import Image

    from ovexport.models.registry import family_for
    from ovexport.runtime.generation import greedy_decode
    from ovexport.runtime.genai_runtime import genai_prepare
    from ovexport.runtime.pipeline import Pipeline

    pipe = Pipeline.load(bundle, ov_config=F32)
    family = family_for(bundle)
    eos = set(pipe.adapter.eos_ids)
    out = {}
    for name, path in images.items():
        msgs, image = [{"role": "user", "content": QUESTION}], Image.open(path).convert("RGB")
        for label, p in (("own", pipe.adapter.prepare(msgs, image)),
                         ("genai", genai_prepare(family, pipe.adapter, msgs, image))):
            tokens = greedy_decode(pipe.models, pipe.prefill_embeddings(p), pipe.embed_text, eos, n)
            out[f"{name}/{label}"] = [t for t in tokens if t not in eos]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--versions", nargs="+", required=True, metavar="X.Y.Z")
    ap.add_argument("--venvs", type=Path, default=Path.home() / ".cache" / "ovexport" / "genai-venvs")
    ap.add_argument("--max-new-tokens", type=int, default=12)
    args = ap.parse_args()
    from PIL import Image

    args.venvs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        images = {}
        for name, (w, h) in SIZES.items():
            images[name] = Path(tmp) / f"{name}.png"
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images[name])
        want = ours(args.bundle, images, args.max_new_tokens)
        print(f"bundle {args.bundle}; greedy, {args.max_new_tokens} tokens, f32; tokens compared with ovexport's")
        print()
        print("| openvino | openvino-genai | loads | 448x448: same tokens as ovexport | 1344x896 (3x2 slices): "
              "same tokens as ovexport on genai's slice layout |")
        print("|---|---|---|---|---|")
        for version in args.versions:
            py = venv_python(args.venvs, version)
            r = subprocess.run([str(py), "-c", CHILD, str(args.bundle.resolve()),
                                json.dumps({k: str(v) for k, v in images.items()}), str(args.max_new_tokens),
                                QUESTION], capture_output=True, text=True)
            lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
            res = json.loads(lines[-1]) if lines else {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
            if "error" in res:
                print(f"| {version} | {version}.0 | no: {res['error'][:120]} | - | - |")
                continue

            def same(name: str, label: str) -> str:
                got = res.get(name)
                if not isinstance(got, list):
                    return f"error: {str(got)[:80]}"
                return "yes" if got == want[f"{name}/{label}"] else f"no ({got[:4]}... vs {want[f'{name}/{label}'][:4]}...)"

            print(f"| {res['openvino'].split('-')[0]} | {res['genai'].split('-')[0]} | yes | {same('448x448', 'own')} | "
                  f"{same('1344x896', 'genai')} |")


if __name__ == "__main__":
    main()
