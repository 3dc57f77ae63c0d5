"""Issue 4: ``ovexport chat`` (one-shot, --json, interactive on stdin) and ``ovexport bench --json`` on the tiny
fp32 bundle."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ovexport.cli import cli
from ovexport.runtime.generation import GenerationConfig as G

from runtime_fixtures import (  # noqa: F401
    F32_FLAGS, ovexport_cmd, rt_bundle, rt_images, rt_pipe, rt_reference, subprocess_env,
)

pytestmark = pytest.mark.integration

Q = "Describe this image."


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_chat_json_is_greedy_reference(rt_bundle, rt_images, rt_reference):
    r = run("chat", rt_bundle, Q, "--image", rt_images["1344x896"], "--greedy", "--max-new-tokens", "12", "--json",
            *F32_FLAGS)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out) == {"prompt_token_ids", "token_ids", "text"}
    from PIL import Image
    prepared = rt_reference.prepare([{"role": "user", "content": Q}], Image.open(rt_images["1344x896"]).convert("RGB"))
    want, _ = rt_reference.greedy(prepared, 12)
    assert out["prompt_token_ids"] == prepared.input_ids.tolist()
    assert out["token_ids"] == want
    assert out["text"] == rt_reference.tokenizer.decode(want)


def test_chat_one_shot_streams_the_same_text(rt_bundle, rt_images, rt_pipe):
    args = ("chat", rt_bundle, Q, "--image", rt_images["448x448"], "--max-new-tokens", "10", *F32_FLAGS)
    plain = run(*args, "--greedy")
    js = run(*args, "--greedy", "--json")
    assert plain.exit_code == 0 and js.exit_code == 0, plain.output + js.output
    assert plain.stdout == json.loads(js.stdout)["text"] + "\n"  # stderr: the unvalidated-bundle warning
    # decoding flags reach the generator: seeded sampling = the Python API with the same config
    s = run(*args, "--seed", "7", "--top-k", "50", "--temperature", "0.9", "--json")
    presets = rt_pipe.adapter.generation_presets   # the bundle's: what the CLI decodes with by default
    want = rt_pipe.chat(Q, str(rt_images["448x448"]),
                        G.sampling(presets, seed=7, top_k=50, temperature=0.9, max_new_tokens=10))
    assert json.loads(s.stdout)["token_ids"] == want.token_ids
    b = run(*args, "--num-beams", "2", "--json")
    assert json.loads(b.stdout)["token_ids"] == rt_pipe.chat(Q, str(rt_images["448x448"]),
                                                             G.beam(presets, num_beams=2, max_new_tokens=10)).token_ids


@pytest.mark.parametrize("flags,message", [
    (["--greedy", "--sample"], "contradict"),
    (["--greedy", "--num-beams", "3"], "contradicts"),
    (["--num-beams", "3", "--temperature", "0.5"], "only apply to sampling"),
    (["--ov-config", "NOEQUALS"], "KEY=VALUE"),
    (["--image", "/no/such/image.png"], "does not exist"),
    (["--device", "NOSUCHDEVICE"], "could not compile"),
])
def test_chat_errors_are_one_line(rt_bundle, flags, message):
    r = CliRunner().invoke(cli, ["chat", str(rt_bundle), Q, *flags])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.output


def test_chat_interactive_session_on_stdin(rt_bundle, rt_images):
    script = "\n".join([
        "Hello there",
        f"/image {rt_images['448x448']}",
        "Describe it.",
        "And again?",
        "/regen",
        "/bogus",
        "/clear",
        "Hi",
        "/exit",
        "never answered",
    ]) + "\n"
    p = subprocess.run(ovexport_cmd("chat", str(rt_bundle), "--greedy", "--max-new-tokens", "6", "--json",
                                    *F32_FLAGS),
                       input=script, capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert p.returncode == 0, p.stderr
    answers = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    assert len(answers) == 5, p.stdout
    hello, describe, again, regen, hi = answers
    assert 101 not in hello["prompt_token_ids"]                     # no image yet
    assert 101 in describe["prompt_token_ids"]                      # /image attached it
    n = len(describe["prompt_token_ids"])
    assert again["prompt_token_ids"][:n] == describe["prompt_token_ids"]  # same conversation, whole prompt rebuilt
    assert regen == again                                           # /regen answers the last question again (greedy)
    assert 101 in hi["prompt_token_ids"] and len(hi["prompt_token_ids"]) < n + 3  # /clear kept the image only
    assert "unknown command /bogus" in p.stderr and "conversation cleared" in p.stderr


def test_chat_interactive_plain_text_streams_answers(rt_bundle):
    p = subprocess.run(ovexport_cmd("chat", str(rt_bundle), "--greedy", "--max-new-tokens", "5",
                                    *F32_FLAGS),
                       input="Hello\nAgain\n", capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == 2


def test_bench_json(rt_bundle, tmp_path):
    r = run("bench", rt_bundle, "--runs", "1", "--warmup", "0", "--max-new-tokens", "4", "--json",
            "--cache-dir", tmp_path / "cache")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out["cases"]) == {"448x448", "1344x896"}
    for name, c in out["cases"].items():
        for k in ("vision_ms", "prefill_ms", "ttft_ms", "decode_tokens_per_s", "peak_rss_mb", "prompt_tokens"):
            assert c[k] > 0, (name, k, c)
        assert c["new_tokens"] == 4
    assert out["cases"]["448x448"]["encoder_calls"] == 1 and out["cases"]["1344x896"]["encoder_calls"] == 2
    assert out["load_s"] > 0 and out["peak_rss_mb"] > 0 and out["runs"] == 1
    bw = out["bandwidth"]
    assert bw["read_bandwidth_gb_s"] > 0.5 and bw["llm_weight_bytes"] == (
        Path(rt_bundle) / "openvino_language_model.bin").stat().st_size
    assert bw["decode_limit_tokens_per_s"] == pytest.approx(bw["read_bandwidth_gb_s"] * 1e9 / bw["llm_weight_bytes"],
                                                            rel=0.01)
    assert all(c["decode_pct_of_bandwidth_limit"] > 0 for c in out["cases"].values())
    assert out["ov_config"]["CACHE_DIR"] == str(tmp_path / "cache") and any((tmp_path / "cache").iterdir())


def test_bench_table(rt_bundle):
    r = run("bench", rt_bundle, "--runs", "1", "--warmup", "0", "--max-new-tokens", "2")
    assert r.exit_code == 0, r.output
    assert "TTFT" in r.output and "1344x896" in r.output and "decode" in r.output


def test_eval_asks_each_answered_question_through_the_runtime(rt_bundle, rt_images, tmp_path):
    """`ovexport eval --json` on the tiny bundle: one unsliced and one sliced image, a question without an answer
    not asked (the counting itself: tests/unit/test_exact_match.py)."""
    import shutil

    folder = tmp_path / "questions"
    (folder / "images").mkdir(parents=True)
    for name, path in rt_images.items():
        shutil.copy(path, folder / "images" / f"{name}.png")
    lines = [{"image": "images/448x448.png", "question": Q, "answer": "a cat"},
             {"image": "images/1344x896.png", "question": Q, "answer": "a dog"},
             {"image": "images/448x448.png", "question": "Unanswered?"}]
    (folder / "questions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = run("eval", rt_bundle, folder, "--max-new-tokens", "2", "--json")
    assert r.exit_code == 0, r.output
    groups = json.loads(r.stdout)["groups"]
    assert set(groups) == {"all", Q, "whole", "pieces"}
    assert [groups[g]["asked"] for g in ("all", Q, "whole", "pieces")] == [2, 2, 1, 1]
    assert groups["all"]["right"] == groups["whole"]["right"] + groups["pieces"]["right"]
