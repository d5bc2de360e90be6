"""Tiny random-weight models, one per supported family, for exactness tests on CPU."""

from __future__ import annotations

import torch
import transformers as T

N_BLOCKS = 4
VOCAB = 96
_COMMON = dict(vocab_size=VOCAB, pad_token_id=0, bos_token_id=1, eos_token_id=2, max_position_embeddings=256)
_LLAMA_LIKE = dict(
    _COMMON,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=N_BLOCKS,
    num_attention_heads=4,
    num_key_value_heads=2,
)
# Sliding window of 8 tokens, so test sequences (longer than 8) exercise the sliding mask.
_HYBRID = dict(
    layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
    sliding_window=8,
)

CONFIGS = {
    "llama": lambda: T.LlamaConfig(**_LLAMA_LIKE),
    "mistral": lambda: T.MistralConfig(**_LLAMA_LIKE, sliding_window=None),
    "mixtral": lambda: T.MixtralConfig(**_LLAMA_LIKE, num_local_experts=4, num_experts_per_tok=2),
    "qwen2": lambda: T.Qwen2Config(**_LLAMA_LIKE),
    "qwen3": lambda: T.Qwen3Config(**_LLAMA_LIKE, head_dim=8),
    "gemma2": lambda: T.Gemma2Config(**_LLAMA_LIKE, head_dim=8, **_HYBRID),
    "gemma3_text": lambda: T.Gemma3TextConfig(**_LLAMA_LIKE, head_dim=8, **_HYBRID),
    "phi3": lambda: T.Phi3Config(**_LLAMA_LIKE),
    "olmo2": lambda: T.Olmo2Config(**_LLAMA_LIKE),
    "gpt2": lambda: T.GPT2Config(
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=N_BLOCKS,
        n_head=4,
        n_positions=256,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "gpt_neox": lambda: T.GPTNeoXConfig(
        **{k: v for k, v in _LLAMA_LIKE.items() if k != "num_key_value_heads"}, rotary_pct=0.5
    ),
    "opt": lambda: T.OPTConfig(
        **_COMMON,
        hidden_size=32,
        ffn_dim=48,
        num_hidden_layers=N_BLOCKS,
        num_attention_heads=4,
        word_embed_proj_dim=32,
    ),
}
FAMILIES = tuple(CONFIGS)


def tiny_model(family: str, dtype: torch.dtype = torch.float32, seed: int = 0) -> T.PreTrainedModel:
    """A deterministic random model of the family; weights scaled up so that every block matters."""
    torch.manual_seed(seed)
    model = T.AutoModelForCausalLM.from_config(CONFIGS[family](), dtype=dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return model
