"""A tiny random Llama with a real tokenizer, built in seconds, for tests and demos without weights.

The tokenizer is a byte-level BPE trained on the spot with `tokenizers` (every string encodes, no
unknown tokens) with SmolLM2's ChatML special tokens and chat template, so the tiny model goes
through exactly the code paths SmolLM2 does: chat templates in TRL, generation stopping at
`<|im_end|>`, PEFT's all-linear targets."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = """\
The quick brown fox jumps over the lazy dog. Yes, no, maybe: answer the question.
user assistant system You are a helpful assistant. What is the capital of France? Paris.
Is the sky blue? Yes. Is fire cold? No. Please answer with yes or no. Thank you!
Feedback makes models better: thumbs up, thumbs down, preferences, rankings and edits.
Write a short poem about the sea. The sea is wide and deep and blue, it sings to me and you.
Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000. Hello world, hello there, good morning, good night.
"""


def make_tiny_model(folder: str | Path, *, layers: int = 2, width: int = 64, seed: int = 0) -> str:
    """Build (or reuse) a tiny random Llama + tokenizer in `folder`; return the folder as a str."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    if (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file():
        return str(folder)
    folder.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    roles = {  # SmolLM2's choices: ChatML markers, <|endoftext|> pads
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    }
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, model_max_length=2048, **roles)
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=width * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
