"""A toy model with its own tokenizer: a tiny byte-level BPE trained here and a random-weight Llama."""

from __future__ import annotations

import pytest

CORPUS = [
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "hello world, hello there, the world is wide\n",
    "the cat sat on the mat; the hat is red\n",
] * 20


def toy_backend(*, lowercase: bool = False):
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from tokentrust.backends.hf import HFBackend

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    trainer = trainers.BpeTrainer(vocab_size=330, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    config = LlamaConfig(vocab_size=len(hf_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         initializer_range=0.5, eos_token_id=0, pad_token_id=0, bos_token_id=0)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = 0
    return HFBackend(model, hf_tok, model_id="toy-bpe", batch_size=4)


def sentencepiece_backend():
    """A SentencePiece-style toy: ``▁`` for spaces, a dummy leading space, ``<0xNN>`` byte-fallback pieces."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from tokentrust.backends.hf import HFBackend

    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    specials = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))]
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", bos_token="<s>", unk_token="<unk>",
                                     pad_token="</s>")
    config = LlamaConfig(vocab_size=len(hf_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         initializer_range=0.5, eos_token_id=2, pad_token_id=2, bos_token_id=1)
    torch.manual_seed(1)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = 2
    return HFBackend(model, hf_tok, model_id="toy-sentencepiece", batch_size=4)


@pytest.fixture(scope="session")
def toy():
    return toy_backend()


@pytest.fixture(scope="session")
def toy_sp():
    return sentencepiece_backend()


@pytest.fixture(scope="session")
def toy_dirs(tmp_path_factory, toy):
    """The toy model saved as a folder, and one whose tokenizer lowercases (its bytes cannot be aligned)."""
    root = tmp_path_factory.mktemp("toys")
    dirs = {}
    for name, backend in (("toy", toy), ("lower", toy_backend(lowercase=True))):
        backend.model.save_pretrained(root / name)
        backend.tokenizer.save_pretrained(root / name)
        dirs[name] = str(root / name)
    return dirs
