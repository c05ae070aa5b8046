"""Load a base model (optionally with a LoRA adapter) and chat with it, whole or streamed.

Used by the trainer's sample generations, by the serving gateway's built-in engine and by tests.
One generation runs at a time per loaded model (a lock): a CPU box gains nothing from
interleaving, and transformers models are not safe to drive from two threads at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainer.models import resolve_base_model


def pick_device(device: str = "auto") -> str:
    """'auto' means CUDA when torch sees a GPU, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA GPU")
    return device


class ChatModel:
    """A causal LM and its tokenizer, with `.chat()` over OpenAI-style messages."""

    def __init__(
        self, model: Any, tokenizer: Any, *, model_id: str, adapter_dir: str | None, device: str
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.adapter_dir = adapter_dir
        self.device = device
        self._lock = threading.Lock()

    def _inputs(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        if self.tokenizer.chat_template:
            encoded = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        else:  # a base model without a template: plain "role: content" lines
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
            encoded = self.tokenizer(text, return_tensors="pt")
        return {k: v.to(self.model.device) for k, v in encoded.items()}

    def _generate_kwargs(
        self, max_new_tokens: int, temperature: float, top_p: float
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id,
        }
        if temperature and temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stream: bool = False,
    ) -> str | Iterator[str]:
        """The assistant's reply to `messages`; with stream=True an iterator of text pieces."""
        inputs = self._inputs(messages)
        kwargs = self._generate_kwargs(max_new_tokens, temperature, top_p)
        if stream:
            return self._stream(inputs, kwargs)
        import torch

        with self._lock, torch.inference_mode():
            output = self.model.generate(**inputs, **kwargs)
        new_tokens = output[0][inputs["input_ids"].shape[1] :]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True)

    def chat_batch(
        self,
        conversations: list[list[dict[str, str]]],
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_prompt_tokens: int | None = None,
    ) -> list[str]:
        """The assistant's replies to several conversations, in one left-padded `generate`:
        greedy, they are what `chat` answers one at a time. A prompt longer than
        max_prompt_tokens loses its start (the oldest turns), as training cuts it."""
        if not conversations:
            return []
        import torch

        tokenizer = self.tokenizer
        rows = [self._inputs(messages)["input_ids"][0].tolist() for messages in conversations]
        if max_prompt_tokens:
            rows = [row[-max_prompt_tokens:] for row in rows]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            ids[index, width - len(row) :] = torch.tensor(row)
            attention[index, width - len(row) :] = 1
        kwargs = self._generate_kwargs(max_new_tokens, temperature, top_p)
        device = self.model.device
        with self._lock, torch.inference_mode():
            output = self.model.generate(
                input_ids=ids.to(device), attention_mask=attention.to(device), **kwargs
            )
        return [tokenizer.decode(row[width:], skip_special_tokens=True) for row in output]

    def _stream(self, inputs: dict[str, Any], kwargs: dict[str, Any]) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
        )
        errors: list[BaseException] = []
        abandoned = threading.Event()  # set when the consumer stops reading: stop generating

        def stop_when_abandoned(input_ids: Any, scores: Any, **_: Any) -> bool:
            return abandoned.is_set()

        def work() -> None:
            from transformers import StoppingCriteriaList

            try:
                with self._lock, torch.inference_mode():
                    self.model.generate(
                        **inputs,
                        **kwargs,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([stop_when_abandoned]),
                    )
            except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
                errors.append(error)
                streamer.end()

        thread = threading.Thread(target=work, name="sinkhole-generate", daemon=True)
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            abandoned.set()
            thread.join()
        if errors:
            raise errors[0]


def load_model(
    base_model_id_or_path: str, adapter_dir: str | Path | None = None, device: str = "auto"
) -> ChatModel:
    """Load the base model (resolved like the trainer does) and, if given, its LoRA adapter."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    device = pick_device(device)
    local = resolve_base_model(base_model_id_or_path)
    dtype = torch.float32
    if device == "cuda" and torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16
    tokenizer_source = (
        str(adapter_dir)
        if adapter_dir and (Path(adapter_dir) / "tokenizer_config.json").is_file()
        else local
    )
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    model = AutoModelForCausalLM.from_pretrained(local, dtype=dtype)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.to(device)
    model.eval()
    return ChatModel(
        model,
        tokenizer,
        model_id=base_model_id_or_path,
        adapter_dir=str(adapter_dir) if adapter_dir is not None else None,
        device=device,
    )
