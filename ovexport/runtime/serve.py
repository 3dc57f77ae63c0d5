"""``ovexport serve``: a Gradio chat app over ``Pipeline``, like the OpenVINO notebook's demo of a VLM.

Upload an image, ask questions (the answer streams into the chatbot), pick the decoding (sampling or beam
search, as the notebook, plus greedy) and its parameters, regenerate the last answer, clear the history.
Each browser session has its own ``Conversation`` (the image is encoded once per conversation); one answer
is generated at a time (the queue runs one event at a time; the pipeline also holds a lock).
"""
from __future__ import annotations

import os
from typing import Any

from .generation import GenerationConfig
from .pipeline import Conversation, Pipeline

DECODE_TYPES = ("Sampling", "Beam Search", "Greedy")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def make_config(decode: str, num_beams: float, rep_beam: float, top_p: float, top_k: float, temperature: float,
                rep_sample: float, max_new_tokens: float, seed: float | None) -> GenerationConfig:
    n = int(max_new_tokens)
    if decode == "Beam Search":
        return GenerationConfig(num_beams=max(int(num_beams), 1), repetition_penalty=float(rep_beam),
                                max_new_tokens=n).check()
    if decode == "Greedy":
        return GenerationConfig(max_new_tokens=n).check()
    return GenerationConfig(do_sample=True, top_p=float(top_p), top_k=int(top_k), temperature=float(temperature),
                            repetition_penalty=float(rep_sample), max_new_tokens=n,
                            seed=None if seed is None or seed < 0 else int(seed)).check()


def model_name(pipe: Pipeline) -> str:
    """The model family's display name, from the bundle's config.json ("the model" when it is not a known one)."""
    from ovexport.errors import OvexportError
    from ovexport.models.registry import family_for

    try:
        return family_for(pipe.bundle).display_name
    except OvexportError:
        return "the model"


def build_app(pipe: Pipeline, title: str | None = None):
    import gradio as gr

    model = model_name(pipe)
    name = title or f"{model} with OpenVINO ({pipe.bundle.parent.name} {pipe.bundle.name}, {pipe.models.device})"
    presets = pipe.adapter.generation_presets
    sampling, beam = presets.sampling, presets.beam

    def respond(question: str, image: Any, history: list | None, conv: Conversation | None, *params):
        history = list(history or [])
        question = (question or "").strip()
        if not question:
            yield history, conv, question
            return
        if conv is None:
            conv = Conversation(image=image)
        config = make_config(*params)
        history = history + [{"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        yield history, conv, ""
        yield from _stream_into(pipe.stream(question, conversation=conv, config=config), history, conv)

    def regenerate(image: Any, history: list | None, conv: Conversation | None, *params):
        history = list(history or [])
        if conv is None or conv.pop_answer() is None:
            gr.Warning("Nothing to regenerate: ask a question first.")
            yield history, conv
            return
        if history and history[-1].get("role") == "assistant":
            history[-1] = {"role": "assistant", "content": ""}
        config = make_config(*params)
        for h, c, _ in _stream_into(pipe.stream(None, conversation=conv, config=config), history, conv):
            yield h, c

    def _stream_into(stream, history: list, conv: Conversation):
        text = ""
        try:
            for piece in stream:
                text += piece
                history[-1] = {"role": "assistant", "content": text}
                yield history, conv, ""
        except Exception as e:  # noqa: BLE001  (shown in the UI, the app keeps running)
            msg = e.line() if hasattr(e, "line") else f"{type(e).__name__}: {e}"
            raise gr.Error(msg) from None
        finally:
            stream.close()
        if not text:
            history[-1] = {"role": "assistant", "content": "(empty answer)"}
            yield history, conv, ""

    def new_image(image: Any):
        return [], (Conversation(image=image) if image is not None else None)

    def clear():
        return [], None

    with gr.Blocks(title=f"{model} OpenVINO", analytics_enabled=False) as demo:
        gr.Markdown(f"## {name}")
        conv_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                image = gr.Image(type="pil", label="Image", sources=["upload", "clipboard"], elem_id="image")
                decode = gr.Radio(list(DECODE_TYPES), value="Sampling", label="Decode type", elem_id="decode")
                with gr.Accordion("Beam search", open=False):
                    num_beams = gr.Slider(1, 5, value=beam["num_beams"], step=1, label="Num beams")
                    rep_beam = gr.Slider(1.0, 3.0, value=beam.get("repetition_penalty", 1.0), step=0.05,
                                         label="Repetition penalty")
                with gr.Accordion("Sampling", open=False):
                    top_p = gr.Slider(0.05, 1.0, value=sampling.get("top_p", 1.0), step=0.05, label="Top P")
                    top_k = gr.Slider(0, 200, value=sampling.get("top_k", 0), step=1, label="Top K (0 = off)")
                    temperature = gr.Slider(0.05, 2.0, value=sampling.get("temperature", 1.0), step=0.05,
                                            label="Temperature")
                    rep_sample = gr.Slider(1.0, 3.0, value=sampling.get("repetition_penalty", 1.0), step=0.05,
                                           label="Repetition penalty")
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)")
                max_new = gr.Slider(1, 1024, value=256, step=1, label="Max new tokens")
                with gr.Row():
                    regen_btn = gr.Button("Regenerate", elem_id="regenerate")
                    clear_btn = gr.Button("Clear history", elem_id="clear")
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label=model, elem_id="chatbot", height=560)
                with gr.Row():
                    question = gr.Textbox(placeholder="Ask about the image, then press Enter or Send",
                                          show_label=False, scale=8, elem_id="question")
                    send_btn = gr.Button("Send", variant="primary", scale=1, elem_id="send")
        params = [decode, num_beams, rep_beam, top_p, top_k, temperature, rep_sample, max_new, seed]
        ask_inputs = [question, image, chatbot, conv_state, *params]
        send_btn.click(respond, ask_inputs, [chatbot, conv_state, question])
        question.submit(respond, ask_inputs, [chatbot, conv_state, question])
        regen_btn.click(regenerate, [image, chatbot, conv_state, *params], [chatbot, conv_state])
        clear_btn.click(clear, None, [chatbot, conv_state])
        image.change(new_image, [image], [chatbot, conv_state])
    demo.queue(default_concurrency_limit=1)
    return demo


def serve(pipe: Pipeline, host: str = "127.0.0.1", port: int = 7860, share: bool = False, echo=print) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_app(pipe)
    if host not in LOCAL_HOSTS:
        echo(f"warning: serving on {host}: anyone who can reach this machine on port {port} can use the model")
    demo.launch(server_name=host, server_port=port, share=share, inbrowser=False, ssr_mode=False,
                show_error=True, quiet=False)
