"""What a published MiniCPM-V-2 bundle carries besides its IRs, and what its model card says about the model.

- ``openvino_tokenizer.xml`` / ``openvino_detokenizer.xml``: our tokenizer converted with openvino-tokenizers,
  checked id for id against ``MiniCPMVTokenizer`` on :data:`TOKENIZER_CORPUS` before the bundle is written;
- ``tokenizer_config.json`` with a ``chat_template`` that renders the prompt of :func:`prompt.build_prompt`
  for text messages (``<s><用户>question<AI>``); the image placeholder is inserted by the runtime;
- ``preprocessor_config.json``: the image-processing settings (slicing, normalisation) of ``config.json``.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ovexport.errors import BundleError

from .resources import resources  # noqa: F401  (the Publishing protocol's resources(recipe))

PIPELINE_TAG = "image-text-to-text"
TOKENIZER_XML = "openvino_tokenizer.xml"
DETOKENIZER_XML = "openvino_detokenizer.xml"
TITLE = "MiniCPM-V-2"

# no system prompt, no separators between turns; BOS from the tokenizer's add_bos_token (see prompt.py)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<用户>' }}{% else %}{{ '<AI>' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<AI>' }}{% endif %}"
)

# special tokens, Chinese, user-defined pieces, byte fallback (emoji, rare letters, control bytes), spaces
TOKENIZER_CORPUS = (
    "Hello world",
    "<用户>你好，世界！请描述这张图片。<AI>",
    "<image><unk><unk></image>\nWhat is unusual on this image?",
    "<slice><image><unk></image><image><unk></image>\n<image><unk></image></slice>",
    "a</s>b<s>c<ref>box</ref><box>1 2 3 4</box><quad></quad><point>(5,6)</point>",
    "数学题：3+4=? 答案是七。",
    "emoji 🤖🚀 and rare letters ẞ ŋ ǂ 𝔘",
    "\x00\x01\x7f control bytes",
    "  two leading spaces, trailing one ",
    "\n\n\ttabs and newlines\n",
    "",
    "ovexport turns vision-language checkpoints into OpenVINO bundles.",
)


def chat_template() -> str:
    return CHAT_TEMPLATE


def preprocessor_config(ckpt: Path) -> dict:
    """The image-processing settings of ``config.json`` under the names of the original image processor."""
    from .config import MiniCPMV2Config

    from .genai_vision import POSITION_BUCKETS

    c = MiniCPMV2Config.from_dir(ckpt)
    return {
        "image_processor_type": "MiniCPMVImageProcessor",
        "do_convert_rgb": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "resample": 3,  # PIL.Image.BICUBIC
        "scale_resolution": c.scale_resolution,
        "patch_size": c.patch_size,
        "max_slice_nums": c.max_slice_nums,
        "slice_mode": c.slice_mode,
        "query_num": c.query_num,
        "im_start": "<image>", "im_end": "</image>", "slice_start": "<slice>", "slice_end": "</slice>",
        "unk": "<unk>",
        # openvino.genai's names: its normalisation, and the grid its vision position_ids are bucketed over
        # (image_size / patch_size), which the vision-embeddings IR reads the patch grid back from
        "norm_mean": [0.5, 0.5, 0.5],
        "norm_std": [0.5, 0.5, 0.5],
        "image_size": POSITION_BUCKETS * c.patch_size,
    }


def genai_config(ckpt: Path) -> dict:
    """``config.json`` as openvino.genai reads it: the checkpoint's, with ``use_image_id: false`` (V-2 puts no
    ``<image_id>`` before an image; genai's default, for 2.6, does)."""
    config = json.loads((Path(ckpt) / "config.json").read_text(encoding="utf-8"))
    config["use_image_id"] = False
    return config


def _hf_tokenizer(ckpt: Path, tmp: Path):
    """A transformers sentencepiece tokenizer equivalent to ours, for openvino-tokenizers' converter.

    The special added tokens are user-defined pieces in tokenizer.model; they are made control pieces in a copy
    so that the detokenizer skips them as ``decode(skip_special_tokens=True)`` does.
    """
    from sentencepiece import sentencepiece_model_pb2 as pb
    from tokenizers import AddedToken
    from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

    config = json.loads((ckpt / "tokenizer_config.json").read_text(encoding="utf-8"))
    added = {int(k): v for k, v in (config.get("added_tokens_decoder") or {}).items()}
    proto = pb.ModelProto()
    proto.ParseFromString((ckpt / "tokenizer.model").read_bytes())
    for i, piece in enumerate(proto.pieces):
        if i in added and added[i].get("special", True) and piece.type == pb.ModelProto.SentencePiece.USER_DEFINED:
            piece.type = pb.ModelProto.SentencePiece.CONTROL
    (tmp / "tokenizer.model").write_bytes(proto.SerializeToString())
    tokens = {i: AddedToken(**{k: v for k, v in t.items() if k in
                                ("content", "lstrip", "rstrip", "normalized", "single_word", "special")})
              for i, t in added.items()}
    names = {"<s>", "</s>", "<unk>"}
    return SentencePieceBackend(
        vocab_file=str(tmp / "tokenizer.model"), legacy=True, added_tokens_decoder=tokens,
        bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>",
        extra_special_tokens=[t.content for i, t in sorted(tokens.items()) if t.content not in names],
        special_tokens_pattern="bos" if config.get("add_bos_token", True) else None,
        add_bos_token=bool(config.get("add_bos_token", True)), add_eos_token=False,
        clean_up_tokenization_spaces=False)


def write_ov_tokenizers(ckpt: Path, out: Path) -> tuple[str, ...]:
    """Convert the tokenizer of ``ckpt`` with openvino-tokenizers into ``out``, then check it (see module doc)."""
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer

    with tempfile.TemporaryDirectory(prefix="ovexport-tok-") as tmp:
        hf = _hf_tokenizer(Path(ckpt), Path(tmp))
        # BOS is added by the switch below, which openvino.genai can turn off (it cannot change a BOS baked into
        # the sentencepiece conversion, and then counts it in every encode(..., add_special_tokens=False))
        tok, detok = convert_tokenizer(hf, with_detokenizer=True, skip_special_tokens=True,
                                       clean_up_tokenization_spaces=False, add_special_tokens=False)
        bos_id = hf.bos_token_id
    config = json.loads((Path(ckpt) / "tokenizer_config.json").read_text(encoding="utf-8"))
    if config.get("add_bos_token", True):
        tok = add_bos_switch(tok, int(bos_id))
    ov.save_model(tok, out / TOKENIZER_XML)
    ov.save_model(detok, out / DETOKENIZER_XML)
    mismatches = check_ov_tokenizer(ckpt, out)
    if mismatches:
        for f in (TOKENIZER_XML, DETOKENIZER_XML):
            for p in (out / f, out / f.replace(".xml", ".bin")):
                p.unlink(missing_ok=True)
        raise BundleError(f"the OpenVINO tokenizer does not reproduce ours: {mismatches[0]}",
                          fix="report it with the openvino-tokenizers version (`pip show openvino-tokenizers`)")
    return TOKENIZER_XML, DETOKENIZER_XML


# the OpenVINO state variable openvino.genai's Tokenizer sets for ``encode(..., add_special_tokens=...)``
ADD_SPECIAL_TOKENS_VARIABLE = "add_special_tokens"


def add_bos_switch(tok, bos_id: int):
    """``tok`` (converted without special tokens) with BOS put in front of every sequence while the state variable
    ``add_special_tokens`` is true (its default), as openvino.genai does to tokenizers with ``CombineSegments``, and
    never in front of a text that starts with BOS already (for a batch: unless one of its texts does). The chat
    template writes BOS; openvino.genai encodes the templated prompt without special tokens in one call and with
    them in a chat's turns: either way the prompt gets exactly one BOS, as ovexport's runtime gives it."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops
    from openvino.op.util import Variable, VariableInfo

    info = VariableInfo()
    info.data_shape, info.data_type, info.variable_id = ov.PartialShape([]), ov.Type.boolean, ADD_SPECIAL_TOKENS_VARIABLE
    variable = Variable(info)
    flag = ops.read_value(ops.constant(np.array(True)), variable)
    ids, mask = (next(o for o in tok.outputs if name in o.get_names()) for name in ("input_ids", "attention_mask"))
    source_ids = ids.get_node().input_value(0)
    first = ops.slice(source_ids, np.array([0]), np.array([1]), np.array([1]), np.array([1]))
    has_bos = ops.reduce_logical_or(ops.equal(first, ops.constant(np.array(bos_id, source_ids.get_element_type()
                                                                             .to_dtype()))),
                                    np.array([0, 1]), keep_dims=False)
    add = ops.logical_and(flag, ops.logical_not(has_bos))
    count = ops.select(add, ops.constant(np.array([1], np.int64)), ops.constant(np.array([0], np.int64)))
    rows = ops.gather(ops.shape_of(source_ids), ops.constant(np.array([0])), 0)
    shape = ops.concat([rows, count], 0)
    for port, value in ((ids, bos_id), (mask, 1)):
        result = port.get_node()
        source = result.input_value(0)
        prefix = ops.broadcast(ops.constant(np.array([[value]], source.get_element_type().to_dtype())), shape)
        result.input(0).replace_source_output(ops.concat([prefix, source], 1).output(0))
    model = ov.Model(tok.get_results(), [ops.assign(flag, variable)], tok.get_parameters(), tok.get_friendly_name())
    for key in tok.get_rt_info():
        model.set_rt_info(tok.get_rt_info(key), key)
    model.set_rt_info("True", "add_special_tokens")
    return model


def check_ov_tokenizer(ckpt: Path, bundle: Path, corpus=TOKENIZER_CORPUS) -> list[str]:
    """Every text of ``corpus`` whose ids from ``openvino_tokenizer.xml`` differ from ``MiniCPMVTokenizer``'s."""
    import openvino as ov
    import openvino_tokenizers  # noqa: F401  (registers the tokenizer operations)

    from .tokenizer import MiniCPMVTokenizer

    ours = MiniCPMVTokenizer.from_dir(ckpt)
    compiled = ov.Core().compile_model(Path(bundle) / TOKENIZER_XML, "CPU")
    bad = []
    for text in corpus:
        got = compiled([text])["input_ids"][0].tolist()
        want = ours.encode(text)
        if got != want:
            bad.append(f"{text!r}: {got} != {want}")
    return bad


def write_bundle_files(ckpt: Path, out: Path) -> None:
    """The files OpenVINO tools look for, next to the IRs: tokenizer IRs, chat template, preprocessor config.

    ``tokenizer_config.json`` in ``out`` may be a hard link to the checkpoint's: it is replaced, never edited.
    """
    ckpt, out = Path(ckpt), Path(out)
    # in a fresh process: OpenVINO names unnamed ops from a process-wide counter (Constant_60 in the first
    # conversion, Constant_6350 in the second), so only a fresh process writes the same XML every time
    r = subprocess.run([sys.executable, "-c", "import sys; from ovexport.models.minicpmv2.publishing import "
                        "write_ov_tokenizers as w; w(*map(__import__('pathlib').Path, sys.argv[1:]))",
                        str(ckpt), str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise BundleError(f"converting the tokenizer with openvino-tokenizers failed: {last}",
                          fix="pip install openvino-tokenizers matching `pip show openvino`")
    config = json.loads((ckpt / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["chat_template"] = chat_template()
    target = out / "tokenizer_config.json"
    target.unlink(missing_ok=True)
    target.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(ckpt), indent=2) + "\n")
    target = out / "config.json"   # a hard link to the checkpoint's: replaced, never edited
    target.unlink(missing_ok=True)
    target.write_text(json.dumps(genai_config(ckpt), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# the oldest openvino / openvino-genai that load a bundle and answer as ovexport does (docs/genai.md, BENCHMARKS.md,
# measured with benchmarks/genai_compat.py on the tiny int4 bundle: 2026.2.0, 2026.2.1, 2026.3.1 and 2026.4.1 give
# ovexport's tokens; 2026.1.0 and 2025.4.1 load and run it but answer about images otherwise)
GENAI_EXACT_FROM = "2026.2.0"
GENAI_LOADS_FROM = "2025.4.1"


def card_usage(repo_id: str) -> str:
    """The 'how to run it' section of the model card (markdown): OpenVINO GenAI, then ovexport's own runtime."""
    local = repo_id.split('/')[-1]
    return f"""### Running with OpenVINO GenAI

```bash
pip install openvino-genai pillow huggingface_hub
hf download {repo_id} --local-dir {local}
```

```python
import numpy as np
import openvino as ov
import openvino_genai as ov_genai
from PIL import Image

pipe = ov_genai.VLMPipeline("{local}", "CPU")
image = ov.Tensor(np.array(Image.open("photo.jpg").convert("RGB"))[None])
config = ov_genai.GenerationConfig(max_new_tokens=256)
print(pipe.generate("Describe this image.", images=[image], generation_config=config).texts[0])

pipe.start_chat()                                    # a conversation: the image is encoded once
pipe.generate("Describe this image.", images=[image], generation_config=config)
print(pipe.generate("And the colours?", generation_config=config).texts[0])
pipe.finish_chat()
```

An image that MiniCPM-V-2 cuts into slices (larger than about 448x448 pixels) is laid out in the prompt as
openvino.genai lays out MiniCPM-V-2.6's slices, which differs from MiniCPM-V-2's own layout by its wrapper tokens;
ovexport's runtime follows MiniCPM-V-2 exactly (see "Compatibility").

### Running with ovexport

```bash
pip install ovexport
hf download {repo_id} --local-dir {repo_id.split('/')[-1]}
ovexport chat {repo_id.split('/')[-1]} "Describe this image." --image photo.jpg
ovexport serve {repo_id.split('/')[-1]}          # a local web chat on http://127.0.0.1:7860
```

```python
from ovexport.runtime.pipeline import Conversation, Pipeline

pipe = Pipeline.load("{repo_id.split('/')[-1]}")
conv = Conversation(image="photo.jpg")             # the image is encoded once per conversation
print(pipe.chat("Describe this image.", conversation=conv).text)
print(pipe.chat("And the colours?", conversation=conv).text)
```

### Compatibility

| runtime | version | |
|---|---|---|
| openvino + openvino-genai (`VLMPipeline`) | {GENAI_EXACT_FROM} and later | answers as ovexport does for images that are not sliced |
| openvino + openvino-genai | {GENAI_LOADS_FROM} to 2026.1 | loads and runs; prepares images otherwise (answers may differ) |
| ovexport | 0.1.0 and later | `ovexport chat`, `ovexport serve`, `Pipeline.load` |

openvino-genai `X.Y.Z.0` pairs with openvino `X.Y.Z` (and openvino-tokenizers `X.Y.Z.0`)."""
