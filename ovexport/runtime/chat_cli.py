"""What ``ovexport chat`` does: decoding options -> ``GenerationConfig``, one-shot answers, the interactive loop.

Interactive session (no PROMPT): every line read from stdin is a question about the current image, in one
conversation; answers stream to stdout. Status lines and the ``> `` prompt go to stderr, so stdout holds only
answers (one JSON object per line with ``--json``). Commands:

    /image PATH   use this image (starts a new conversation)
    /noimage      drop the image (starts a new conversation)
    /clear        forget the conversation (keeps the image)
    /regen        answer the last question again
    /help         list the commands
    /exit, /quit  leave (so does end of input)
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import IO

from ovexport.errors import InputError, OvexportError

from ovexport.models.interface import GenerationPresets

from .generation import GenerationConfig

HELP = """commands:
  /image PATH   use this image (starts a new conversation)
  /noimage      drop the image (starts a new conversation)
  /clear        forget the conversation (keeps the image)
  /regen        answer the last question again
  /exit         leave (also /quit, or end of input)"""


def build_config(presets: GenerationPresets, *, greedy: bool = False, sample: bool = False,
                 num_beams: int | None = None, temperature: float | None = None, top_p: float | None = None,
                 top_k: int | None = None, repetition_penalty: float | None = None, seed: int | None = None,
                 max_new_tokens: int | None = None, stop: tuple[str, ...] = ()) -> GenerationConfig:
    """The decoding the flags ask for. Default: sampling with the model's defaults (``presets``, from its family
    and its generation_config.json); ``--greedy`` is always plain greedy; ``--num-beams N`` (N > 1) is beam search
    with the model's defaults; explicit values override the chosen mode's defaults."""
    fix = "use one of --greedy, --sample, --num-beams N"
    if greedy and sample:
        raise InputError("--greedy and --sample contradict each other", fix=fix)
    if num_beams is not None and num_beams > 1 and (greedy or sample):
        raise InputError(f"--num-beams {num_beams} contradicts --{'greedy' if greedy else 'sample'}", fix=fix)
    if greedy or (num_beams == 1 and not sample):
        mode = "greedy"
    elif num_beams is not None and num_beams > 1:
        mode = "beam"
    else:
        mode = "sample"
    sampling_only = {"--temperature": temperature, "--top-p": top_p, "--top-k": top_k}
    given = [k for k, v in sampling_only.items() if v is not None]
    if mode != "sample" and given:
        raise InputError(f"{', '.join(given)} only apply to sampling, and {mode} decoding was asked for",
                         fix="add --sample, or drop " + ", ".join(given))
    if mode == "greedy":
        config = GenerationConfig.greedy()
    elif mode == "beam":
        config = GenerationConfig.beam(presets, num_beams=num_beams)
    else:
        config = GenerationConfig.sampling(presets)
    config = config.updated(temperature=temperature, top_p=top_p, top_k=top_k,
                            repetition_penalty=repetition_penalty, seed=seed, max_new_tokens=max_new_tokens)
    if stop:
        config = config.updated(stop_strings=tuple(stop))
    return config.check()


def _answer(pipe, question: str | None, conv, config: GenerationConfig, as_json: bool, out: IO[str]):
    """Stream one answer to ``out`` (or print it as JSON); Ctrl-C stops the answer, not the session."""
    stream = pipe.stream(question, conversation=conv, config=config)
    try:
        for piece in stream:
            if not as_json:
                out.write(piece)
                out.flush()
    except KeyboardInterrupt:
        stream.close()
        if not as_json:
            out.write(" [stopped]")
    result = stream.result
    if as_json:
        out.write(json.dumps(result.to_json(), ensure_ascii=False))
    out.write("\n")
    out.flush()
    return result


def one_shot(pipe, prompt: str, image, config: GenerationConfig, as_json: bool, out: IO[str] | None = None):
    from .pipeline import Conversation

    out = out or sys.stdout
    conv = Conversation(image=image)
    return _answer(pipe, prompt, conv, config, as_json, out)


def interactive(pipe, image, config: GenerationConfig, as_json: bool, inp: IO[str] | None = None,
                out: IO[str] | None = None, err: Callable[[str], None] | None = None) -> int:
    """Run the session until /exit or end of input; returns the number of questions answered."""
    from .pipeline import Conversation

    inp = inp or sys.stdin
    out = out or sys.stdout
    tty = inp.isatty() if hasattr(inp, "isatty") else False

    def say(msg: str) -> None:
        if err is not None:
            err(msg)
        else:
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()

    conv = Conversation(image=image)
    if tty:
        say(f"chat with {pipe.bundle} ({config.mode} decoding); /help for commands, /exit to leave")
    answered = 0
    while True:
        try:
            if tty:
                try:
                    import readline  # noqa: F401  (line editing and history for input())
                except ImportError:
                    pass
                line = input("> ") + "\n"
            else:
                line = inp.readline()
        except (KeyboardInterrupt, EOFError):
            say("")
            break
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("/"):
                cmd, _, arg = line.partition(" ")
                arg = arg.strip()
                if cmd in ("/exit", "/quit"):
                    break
                elif cmd == "/help":
                    say(HELP)
                elif cmd == "/clear":
                    conv.clear(keep_image=True)
                    say("conversation cleared")
                elif cmd == "/image":
                    if not arg:
                        raise InputError("/image needs a path", fix="type /image PATH")
                    img = pipe.load_image(arg)
                    conv = Conversation(image=img)
                    say(f"image {arg} ({img.width}x{img.height}); new conversation")
                elif cmd == "/noimage":
                    conv = Conversation()
                    say("no image; new conversation")
                elif cmd == "/regen":
                    if conv.pop_answer() is None:
                        raise InputError("there is no answer to regenerate", fix="ask a question first")
                    _answer(pipe, None, conv, config, as_json, out)
                    answered += 1
                else:
                    raise InputError(f"unknown command {cmd}", fix="type /help for the commands")
                continue
            _answer(pipe, line, conv, config, as_json, out)
            answered += 1
        except OvexportError as e:
            say(f"error: {e.line()}")
    return answered
