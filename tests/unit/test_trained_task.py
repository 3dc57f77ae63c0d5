"""The generated VQA task of the tiny trained MiniCPM-V-2, its cache and its source string."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from ovexport.models.minicpmv2.slicing import best_grid
from ovexport.synthetic import vqa_task as task

pytestmark = pytest.mark.unit

SCALE_RESOLUTION = 112   # fixtures.trained_minicpmv2.train.TRAINED_OVERRIDES


def _digest(s: task.Sample | task.Scene) -> str:
    qa = s.qa if isinstance(s, task.Scene) else ((s.question, s.answer),)
    return hashlib.sha256(s.image.tobytes() + json.dumps(qa).encode()).hexdigest()


def _take(stream, n):
    return [next(stream) for _ in range(n)]


def test_heldout_set_is_deterministic_for_a_seed_and_differs_between_seeds():
    a, b = task.heldout_samples(0, 40), task.heldout_samples(0, 40)
    assert [_digest(s) for s in a] == [_digest(s) for s in b]
    assert [s.key for s in a] == [s.key for s in b]
    c = task.heldout_samples(1, 40)
    assert len({s.key for s in a} & {s.key for s in c}) == 0


def test_training_stream_is_deterministic_for_a_seed():
    a = _take(task.training_stream(3), 30)
    b = _take(task.training_stream(3), 30)
    assert [_digest(s) for s in a] == [_digest(s) for s in b]
    assert [_digest(s) for s in a] != [_digest(s) for s in _take(task.training_stream(4), 30)]


def test_training_stream_never_shows_a_heldout_image():
    heldout = task.heldout_samples(0)
    keys = {s.key for s in heldout}
    images = {hashlib.sha256(s.image.tobytes()).hexdigest() for s in heldout}
    train = _take(task.training_stream(0, keys), 1500)
    assert not keys & {s.key for s in train}
    assert not images & {hashlib.sha256(s.image.tobytes()).hexdigest() for s in train}


def _pairs(samples) -> set[str]:
    """Digests of every (image bytes, question) pair of samples or scenes."""
    out = set()
    for s in samples:
        qa = s.qa if isinstance(s, task.Scene) else ((s.question, s.answer),)
        out |= {hashlib.sha256(s.image.tobytes() + q.encode()).hexdigest() for q, _ in qa}
    return out


def test_validation_set_is_deterministic_and_laid_out_as_the_heldout_set():
    a, b = task.validation_samples(0, 40), task.validation_samples(0, 40)
    assert [_digest(s) for s in a] == [_digest(s) for s in b]
    assert not {s.key for s in a} & {s.key for s in task.validation_samples(1, 40)}
    full = task.validation_samples(0)
    assert len(full) == task.VALIDATION_QUESTIONS
    seen = {(s.question, s.sliced_size) for s in full}
    assert seen == {(q, sliced) for q in task.QUESTIONS.values() for sliced in (False, True)}


def test_training_validation_and_heldout_streams_are_disjoint():
    heldout, validation = task.heldout_samples(0), task.validation_samples(0)
    reserved = task.reserved_keys(0)
    assert reserved == {s.key for s in heldout} | {s.key for s in validation}
    train = _take(task.training_stream(0, reserved), 1500)
    h, v, t = _pairs(heldout), _pairs(validation), _pairs(train)
    assert len(h) == len(heldout) and len(v) == len(validation)
    assert not h & v and not h & t and not v & t
    images = [{hashlib.sha256(s.image.tobytes()).hexdigest() for s in group} for group in (heldout, validation, train)]
    assert not images[0] & images[1] and not (images[0] | images[1]) & images[2]


def test_the_trained_checkpoint_never_trains_on_a_heldout_or_validation_image(tmp_path, monkeypatch):
    from ovexport.fixtures.trained_minicpmv2 import build

    seen = {}

    def fake_train(cfg, tok, seed, exclude, settings, progress):
        seen["exclude"] = exclude
        raise KeyboardInterrupt     # stop before any training

    monkeypatch.setattr(build, "train", fake_train)
    with pytest.raises(KeyboardInterrupt):
        build.build_trained_checkpoint(tmp_path, seed=3)
    assert seen["exclude"] == task.reserved_keys(3)
    assert {s.key for s in task.validation_samples(3)} <= seen["exclude"]


def test_training_stream_skips_excluded_keys():
    first = _take(task.training_stream(0), 3)
    skipped = _take(task.training_stream(0, {first[0].key}), 2)
    assert [s.key for s in skipped] == [first[1].key, first[2].key]


def test_a_one_shape_scene_answers_colour_shape_and_position():
    import random
    sc = task.scene(random.Random(0), "one", large=False)
    assert [q for q, _ in sc.qa] == [task.QUESTIONS[k] for k in ("color", "shape", "position")]
    answers = dict(sc.qa)
    assert answers[task.QUESTIONS["color"]] in task.COLORS and answers[task.QUESTIONS["shape"]] in task.SHAPES
    assert answers[task.QUESTIONS["position"]] in task.POSITIONS


def test_training_asks_every_kind_about_equally_often_and_each_one_first():
    import collections
    scenes = _take(task.training_stream(0), 900)
    first = collections.Counter(sc.qa[0][0] for sc in scenes)
    per_kind = collections.Counter(q for sc in scenes for q, _ in sc.qa)
    assert set(first) == set(task.QUESTIONS.values())
    assert min(per_kind.values()) > 0.8 * max(per_kind.values()), per_kind     # every kind about as often
    # a one-shape scene asks its three questions in random order: each of them comes first in 1/3 of those scenes
    assert max(first.values()) < 4 * min(first.values()), first
    assert sum(len(sc.qa) for sc in scenes) > 1.5 * len(scenes), "a one-shape scene carries three questions"


def test_sliced_share_of_the_training_stream():
    scenes = _take(task.training_stream(0, sliced_share=0.25), 400)
    assert 0.17 < sum(sc.sliced_size for sc in scenes) / len(scenes) < 0.33


def test_heldout_covers_every_question_kind_on_sliced_and_unsliced_images():
    samples = task.heldout_samples(0)
    assert 100 <= len(samples) <= 200
    seen = {(s.question, best_grid(s.image.size, 9, SCALE_RESOLUTION) is not None) for s in samples}
    assert seen == {(q, sliced) for q in task.QUESTIONS.values() for sliced in (False, True)}


def test_answers_are_short_and_from_the_task_vocabulary():
    allowed = {*task.COLORS, *task.SHAPES, *task.POSITIONS, *task.WORDS,
               *(str(n) for n in range(1, task.MAX_COUNT + 1))}
    qa = [pair for sc in _take(task.training_stream(0), 500) for pair in sc.qa]
    qa += [(s.question, s.answer) for s in task.heldout_samples(0)]
    for question, answer in qa:
        assert question in task.QUESTIONS.values()
        assert answer in allowed and len(answer.split()) <= 2


def test_every_size_class_is_sliced_as_intended():
    assert all(best_grid(size, 9, SCALE_RESOLUTION) is None for size in task.SMALL_SIZES)
    assert all(best_grid(size, 9, SCALE_RESOLUTION) is not None for size in task.LARGE_SIZES)


def test_write_heldout_writes_the_local_eval_folder_format(tmp_path):
    samples = task.heldout_samples(0, 6)
    task.write_heldout(samples, tmp_path)
    lines = (tmp_path / "questions.jsonl").read_text().splitlines()
    assert len(lines) == 6
    for line, s in zip(lines, samples):
        rec = json.loads(line)
        assert set(rec) == {"id", "image", "question", "answer"}
        assert rec["image"].startswith("images/") and (tmp_path / rec["image"]).is_file()
        assert (rec["question"], rec["answer"]) == (s.question, s.answer)
    assert [r["image_path"] for r in task.read_heldout(tmp_path)][0] == tmp_path / "images/0000.png"


def test_task_words_are_single_tokenizer_pieces(tmp_path):
    from ovexport.models.minicpmv2.synth_tokenizer import write_tokenizer
    from ovexport.models.minicpmv2.tokenizer import MiniCPMVTokenizer

    write_tokenizer(tmp_path, vocab_size=1024, words=task.TASK_WORDS)
    tok = MiniCPMVTokenizer.from_dir(tmp_path)
    for word in task.TASK_WORDS:
        assert tok.tokenize(word) == ["\u2581" + word], word
    assert tok.decode(tok.encode("top left", add_bos=False)) == "top left"


def test_tokenizer_without_task_words_is_unchanged(tmp_path):
    from ovexport.models.minicpmv2.synth_tokenizer import build_model_proto
    assert build_model_proto(1024, 0).SerializeToString() == build_model_proto(1024, 0, ()).SerializeToString()


# ----------------------------------------------------------------------------------------- source and family
def test_tiny_trained_source_parses_and_round_trips():
    from ovexport.recipe.source import parse_source
    src = parse_source("synthetic://tiny-trained?seed=7")
    assert (src.kind, src.size, src.seed) == ("synthetic", "tiny-trained", 7)
    assert parse_source(src.uri) == src
    assert parse_source("synthetic://tiny-trained").seed == 0


def test_unknown_synthetic_size_lists_the_family_sizes():
    from ovexport.recipe.source import parse_source
    with pytest.raises(ValueError, match="synthetic://tiny-trained"):
        parse_source("synthetic://tiny-traned?seed=0")


def test_the_trained_fixture_is_a_synthetic_source_of_the_family_not_one_of_its_sizes():
    from ovexport.engine.code_digest import closure_files
    from ovexport.models.registry import family_of_synthetic, get_family, synthetic_sizes
    from ovexport.synthetic.sources import heldout_sources, source, trained_fixtures
    fam = get_family("minicpmv2")
    assert fam.synthetic_sizes == ("tiny", "full")
    assert set(synthetic_sizes()) == {"tiny", "full", "tiny-trained"} | set(synthetic_sizes()[3:])
    assert family_of_synthetic("tiny-trained") is fam
    fixture = source("tiny-trained")
    assert trained_fixtures("minicpmv2") == {"tiny": fixture} and "tiny-trained" in heldout_sources()
    # the family's code does not reach the trainer; the fixture's code reaches the trainer, the task and the model
    family_code = closure_files(*fam.entry_modules["synthetic"], type(fam).__module__)
    assert not [f for f in family_code if "fixtures" in f or "vqa_task" in f]
    code = closure_files(*fixture.code)
    assert {"ovexport/fixtures/trained_minicpmv2/train.py", "ovexport/synthetic/vqa_task.py",
            "ovexport/synthetic/drawing.py", "ovexport/models/minicpmv2/prompt.py"} <= set(code)


def test_synth_trained_asks_the_registry_for_the_fixture():
    from click.testing import CliRunner

    from ovexport.cli import cli
    res = CliRunner().invoke(cli, ["synth", "/nonexistent/out", "--size", "full", "--trained"])
    assert res.exit_code != 0 and "--trained works with --size tiny" in res.output, res.output


# ----------------------------------------------------------------------------------------- training
def test_training_is_deterministic_for_a_seed(tmp_path):
    """Both stages (vision pretraining, then the full steps) give the same weights twice for one seed."""
    from ovexport.models.minicpmv2.synth_tokenizer import write_tokenizer
    from ovexport.models.minicpmv2.tokenizer import MiniCPMVTokenizer
    from ovexport.fixtures.trained_minicpmv2.train import TrainSettings, train, trained_config

    cfg = trained_config(0)
    write_tokenizer(tmp_path, vocab_size=cfg["vocab_size"], seed=0, words=task.TASK_WORDS)
    tok = MiniCPMVTokenizer.from_dir(tmp_path)
    settings = TrainSettings(steps=2, batch_size=2, pretrain_steps=2, pretrain_batch=2, warmup=1)
    first, report = train(cfg, tok, 0, set(), settings)
    second, _ = train(cfg, tok, 0, set(), settings)
    other, _ = train(cfg, tok, 1, set(), settings)
    a, b, c = first.state_dict(), second.state_dict(), other.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert report["steps"] == 2 and report["pretrain_steps"] == 2


# ----------------------------------------------------------------------------------------- cache
def test_cache_key_depends_on_seed_and_settings():
    from ovexport.fixtures.trained_minicpmv2.build import cache_key
    from ovexport.fixtures.trained_minicpmv2.train import TrainSettings
    assert cache_key(0) == cache_key(0)
    assert cache_key(0) != cache_key(1)
    assert cache_key(0) != cache_key(0, TrainSettings(steps=3))


def test_second_request_links_the_cached_checkpoint_without_training(tmp_path, monkeypatch):
    from ovexport.fixtures.trained_minicpmv2 import build
    from ovexport.fixtures.trained_minicpmv2.train import TrainSettings

    monkeypatch.setenv("OVEXPORT_CACHE", str(tmp_path / "cache"))
    settings = TrainSettings(steps=2, batch_size=2, heldout_questions=5, pretrain_steps=2, pretrain_batch=2)
    first = build.write_trained_checkpoint(tmp_path / "a", seed=0, settings=settings)
    names = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert {"config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.model",
            "tokenizer_config.json", "special_tokens_map.json", "heldout/questions.jsonl"} <= set(names)
    assert json.loads((first / "config.json").read_text())["ovexport_synthetic"] == {"size": "tiny-trained", "seed": 0}

    def no_training(*a, **k):
        raise AssertionError("trained again although cached")
    monkeypatch.setattr(build, "build_trained_checkpoint", no_training)
    second = build.write_trained_checkpoint(tmp_path / "b", seed=0, settings=settings)
    for n in names:
        assert (second / n).read_bytes() == (first / n).read_bytes()
    assert not list((tmp_path / "cache").rglob(".tmp-*")), "no temporary leftovers in the cache"


# ----------------------------------------------------------------------------------------- dense targets
def test_part_map_covers_exactly_the_drawn_shapes_and_the_inked_letters():
    import random

    import numpy as np
    rng = random.Random(5)
    for kind in ("one", "count", "word") * 2:
        sc = task.scene(rng, kind)
        parts = task.scene_parts(sc.key)
        pixels = np.asarray(sc.image).astype(int)
        assert parts.shape == pixels.shape[:2]
        size, bg, drawn = json.loads(sc.key)
        if kind == "word":
            ink = np.array((15, 15, 15) if bg[1] >= 128 else (245, 245, 245))
            inked = (pixels == ink).all(-1)
            assert (parts[inked] > 0).all()               # every fully inked pixel is some letter's
            assert {task.PARTS[p] for p in np.unique(parts[parts > 0])} == set(drawn[1])
        else:
            shape, colour = drawn[1], drawn[2]
            painted = (pixels == np.array(task.COLORS[colour])).all(-1)
            assert np.array_equal(painted, parts > 0)     # drawn again from the key: the same pixels
            assert set(np.unique(parts)) == {0, task.PARTS.index(shape)}


def test_patch_targets_follow_the_slicing_of_the_pixels():
    import random

    import numpy as np

    from ovexport.models.minicpmv2.slicing import slice_image
    from ovexport.fixtures.trained_minicpmv2 import dense
    rng = random.Random(2)
    for kind in ("one", "count", "word"):
        for large in (False, True):
            sc = task.scene(rng, kind, large)
            targets = dense.encoder_image_targets(sc.key, sc.image.size, SCALE_RESOLUTION, 14, 9)
            images = slice_image(sc.image, 9, SCALE_RESOLUTION, 14).images
            assert len(targets) == len(images)
            assert [t.size for t in targets] == [(im.width // 14) * (im.height // 14) for im in images]
            assert targets[0].max() > 0                   # what is asked about covers some patch of the overview
            assert all(t.min() >= 0 and t.max() < len(task.PARTS) for t in targets)


def test_patch_targets_need_the_minimum_cover():
    import numpy as np

    from ovexport.fixtures.trained_minicpmv2 import dense
    parts = np.zeros((28, 28), dtype=np.uint8)
    parts[:14, :5] = 1            # 5/14 of the top-left patch: labelled
    parts[14:, :3] = 2            # 3/14 of the bottom-left patch: below MIN_COVER, background
    t = dense.patch_targets(dense.patch_coverage(parts, (28, 28), 14))
    assert t.tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize("aid", ["dense_weight", "pool_weight"])
def test_a_training_aid_changes_the_training_but_not_what_the_checkpoint_holds(tmp_path, aid):
    """The dense per-patch loss and the pooled patch probe train the tower; their heads are thrown away."""
    from ovexport.models.minicpmv2.synth_tokenizer import write_tokenizer
    from ovexport.models.minicpmv2.tokenizer import MiniCPMVTokenizer
    from ovexport.fixtures.trained_minicpmv2.train import TrainSettings, train, trained_config

    cfg = trained_config(0)
    write_tokenizer(tmp_path, vocab_size=cfg["vocab_size"], seed=0, words=task.TASK_WORDS)
    tok = MiniCPMVTokenizer.from_dir(tmp_path)
    base = dict(steps=2, batch_size=2, pretrain_steps=1, pretrain_batch=2, warmup=1)
    off, _ = train(cfg, tok, 0, set(), TrainSettings(**base, **{aid: 0.0}))
    on, _ = train(cfg, tok, 0, set(), TrainSettings(**base, **{aid: 1.0}))
    a, c = off.state_dict(), on.state_dict()
    assert set(a) == set(c) and all(a[k].shape == c[k].shape for k in a)
    assert not torch.equal(a["vpm.blocks.0.attn.qkv.weight"], c["vpm.blocks.0.attn.qkv.weight"])


def test_word_part_labels_mark_every_inked_pixel_with_the_word():
    import random

    import numpy as np
    sc = task.scene(random.Random(3), "word")
    word = json.loads(sc.key)[2][1]
    by_word, by_letter = task.scene_parts(sc.key, "words"), task.scene_parts(sc.key, "letters")
    assert set(np.unique(by_word)) == {0, task.PARTS.index(word)}
    assert np.array_equal(by_word > 0, by_letter > 0)
