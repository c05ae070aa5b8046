"""Chatting with a loaded model: several conversations in one batched generate."""

from __future__ import annotations

from trainer.inference import load_model


def _conversations() -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": "Is the sky blue?"}],
        [
            {"role": "user", "content": "Write a short poem about the sea."},
            {"role": "assistant", "content": "The sea is wide and deep and blue."},
            {"role": "user", "content": "Thank you! Is fire cold? Please answer with yes or no."},
        ],
        [{"role": "user", "content": "Hello there"}],
    ]


def test_a_batch_of_conversations_gets_the_replies_each_gets_alone(tiny_model):
    chat = load_model(tiny_model, device="cpu")
    conversations = _conversations()
    alone = [chat.chat(messages, max_new_tokens=8) for messages in conversations]
    calls = []
    generate = chat.model.generate
    chat.model.generate = lambda *args, **kwargs: calls.append(1) or generate(*args, **kwargs)
    together = chat.chat_batch(conversations, max_new_tokens=8)
    assert together == alone and any(alone)
    assert len(calls) == 1
    assert chat.chat_batch([], max_new_tokens=8) == []


def test_a_batched_prompt_over_the_cap_loses_its_start(tiny_model):
    chat = load_model(tiny_model, device="cpu")
    long, short = _conversations()[1], _conversations()[0]
    long_ids, short_ids = (
        chat._inputs(messages)["input_ids"][0].tolist() for messages in (long, short)
    )
    cap = len(short_ids)
    assert len(long_ids) > cap
    seen = []
    generate = chat.model.generate
    chat.model.generate = lambda *args, **kwargs: (
        seen.append(kwargs["input_ids"]) or generate(*args, **kwargs)
    )
    chat.chat_batch([long, short], max_new_tokens=4, max_prompt_tokens=cap)
    assert seen[0].tolist() == [long_ids[-cap:], short_ids]  # the newest turns are kept
