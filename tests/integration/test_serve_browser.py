"""Issue 4: ``ovexport serve`` in a real browser: upload an image, ask, see the streamed answer in the chatbot.

Needs Debian's Chromium and the Python playwright package (no `playwright install`: the system browser is used):

    apt-get update && apt-get install -y chromium
    pip install playwright        # or: pip install -e '.[dev]'
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from runtime_fixtures import F32_FLAGS, ovexport_cmd, rt_bundle, rt_images, subprocess_env  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _requirements():
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium: apt-get update && apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.skip("needs the playwright Python package: pip install playwright (no `playwright install`)")
    try:
        import gradio  # noqa: F401
    except ImportError:
        pytest.skip("needs gradio: pip install 'ovexport[serve]'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"ovexport serve exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def serving(bundle: Path):
    """``ovexport serve BUNDLE`` on a free port; yields (url, process); stopped afterwards."""
    port = free_port()
    proc = subprocess.Popen(ovexport_cmd("serve", str(bundle), "--port", str(port), *F32_FLAGS),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=subprocess_env())
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture()
def server(rt_bundle):
    _requirements()
    with serving(rt_bundle) as served:
        yield served


@contextlib.contextmanager
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def ask(page, url: str, image: Path, question: str, min_chars: int):
    """Open the app, upload ``image``, ask ``question`` greedily; the bot's last message once it has
    ``min_chars`` characters."""
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("#question textarea", timeout=60_000)
    page.locator("#image input[type=file]").set_input_files(str(image))
    page.wait_for_selector("#image img", timeout=60_000)  # uploaded and shown: the conversation is reset
    page.get_by_label("Greedy").check()
    page.locator("#question textarea").fill(question)
    page.locator("#send").click()
    bot = page.locator("#chatbot [data-testid=bot]").last
    bot.wait_for(timeout=60_000)
    page.wait_for_function(
        "(n) => { const m = document.querySelectorAll('#chatbot [data-testid=bot]');"
        " return m.length && m[m.length - 1].innerText.trim().length >= n; }", arg=min_chars, timeout=120_000)
    return bot


def test_upload_ask_and_see_the_streamed_answer(server, rt_images):
    url, proc = server
    with browser_page() as page:
        bot = ask(page, url, rt_images["448x448"], "What is in the image?", min_chars=6)
        user = page.locator("#chatbot [data-testid=user]").last.inner_text()
        assert "What is in the image?" in user
        answer = bot.inner_text().strip()
        assert answer and answer != "(empty answer)"
        assert page.locator("#question textarea").input_value() == ""  # the box is cleared for the next question
    assert proc.poll() is None, "the server died during the test"


@pytest.fixture()
def trained_server(tmp_path, trained_checkpoint):
    """``ovexport serve`` on the TRAINED tiny bundle (fp32), whose answers can be right or wrong."""
    _requirements()
    import ovexport.steps  # noqa: F401  (registers the steps)
    from ovexport.engine import run_steps
    from ovexport.recipe.load import load_recipe
    from runtime_fixtures import REPO, STEPS

    recipe = load_recipe(REPO / "recipes" / "tiny-trained-minicpmv2-fp32.yaml",
                         [f"output.root={tmp_path / 'dist'}", f"steps={STEPS}"])
    bundle = Path(run_steps.run(recipe).artifacts["bundle"])
    with serving(bundle) as (url, proc):
        yield url, proc, bundle


@pytest.mark.slow  # needs the trained fixture (~7 min of CPU to train once)
def test_the_trained_model_gives_the_right_answer_on_the_page(trained_server, trained_checkpoint):
    """The first held-out question (in file order) that the runtime answers right is asked through the page: the
    page shows the ground truth."""
    import json

    from ovexport.evaluation.scoring import normalise_answer
    from ovexport.runtime.generation import GenerationConfig
    from ovexport.runtime.pipeline import Pipeline
    from runtime_fixtures import F32

    url, proc, bundle = trained_server
    heldout = trained_checkpoint / "heldout"
    pipe = Pipeline.load(bundle, ov_config=F32, cache_dir=False)
    case = None
    for line in (heldout / "questions.jsonl").read_text().splitlines():
        q = json.loads(line)
        got = pipe.chat(q["question"], image=heldout / q["image"], config=GenerationConfig.greedy(max_new_tokens=8))
        if normalise_answer(got.text) == normalise_answer(q["answer"]):
            case = q
            break
    del pipe
    assert case is not None, "the trained bundle answers no held-out question right"
    with browser_page() as page:
        bot = ask(page, url, heldout / case["image"], case["question"], min_chars=1)
        time.sleep(1.0)  # the stream may still be adding its last characters
        assert normalise_answer(bot.inner_text()) == normalise_answer(case["answer"])
    assert proc.poll() is None, "the server died during the test"
