#!/usr/bin/env python3
"""Parameter and FLOP counts of Hugging Face transformers models, for Tests/EstimatesTests.

Builds GPT-2, LLaMA and Mistral models on PyTorch's meta device (no memory, no weights) from the
presets and from random configurations, counts their parameters with `num_parameters()` (tied
weights once); runs small ones forward and backward on the CPU under PyTorch's FlopCounterMode
(eager attention, which computes all N² scores and then masks), and sums the bytes of the
distinct storages autograd saves for the backward pass of GPT-2 models (floating-point
activations only: parameters, token ids and scalars excluded); and writes all of it as a Swift source file the tests compile in, so the tests run
without Python:

    python3 scripts/make_estimates_fixtures.py > Tests/EstimatesTests/TransformersFixtures.swift
"""
import random

import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM


def count(model_class, config):
    with torch.device("meta"):
        model = model_class(config)
    return model.num_parameters()


def measured_flops(model, vocab, batch, seq):
    """Forward and backward FLOPs of one step on random tokens, as PyTorch counts them."""
    tokens = torch.randint(0, vocab, (batch, seq))
    with FlopCounterMode(display=False) as forward:
        logits = model(tokens).logits
    with FlopCounterMode(display=False) as backward:
        logits.float().pow(2).mean().backward()
    return forward.get_total_flops(), backward.get_total_flops()


def saved_activation_bytes(model, vocab, batch, seq):
    """Bytes of the distinct non-parameter floating-point storages saved for backward by one
    training step (forward and the cross-entropy loss)."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters and tensor.dtype.is_floating_point and tensor.dim() > 0:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    tokens, targets = torch.randint(0, vocab, (batch, seq)), torch.randint(0, vocab, (batch, seq))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logits = model(tokens).logits
        torch.nn.functional.cross_entropy(logits.view(-1, vocab), targets.view(-1))
    return sum(saved.values())


def gpt2(layers, heads, width, mlp, context, vocab, tied=True, flops=None, memory=None):
    config = GPT2Config(attn_implementation="eager", n_layer=layers, n_head=heads, n_embd=width, n_inner=mlp, n_positions=context,
                        vocab_size=vocab, tie_word_embeddings=tied, bos_token_id=None, eos_token_id=None)
    swift = (f"TransformerConfig(layers: {layers}, heads: {heads}, width: {width}, mlpWidth: {mlp or 4 * width}, "
             f"context: {context}, vocabularySize: {vocab}, tiedEmbeddings: {str(tied).lower()})")
    if flops:
        return swift, measured_flops(GPT2LMHeadModel(config), vocab, *flops)
    if memory:
        # Dropout off: PyTorch's CPU dropout saves a Float32 mask where fused kernels save bytes.
        config.activation_function = "gelu_pytorch_tanh"
        config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0
        return swift, saved_activation_bytes(GPT2LMHeadModel(config).train(), vocab, *memory)
    return swift, count(GPT2LMHeadModel, config)


def llama(layers, heads, kv, width, mlp, context, vocab, bias=False, tied=False, mistral=False, flops=None):
    cls, config_cls = (MistralForCausalLM, MistralConfig) if mistral else (LlamaForCausalLM, LlamaConfig)
    extra = {} if mistral else {"attention_bias": bias, "mlp_bias": bias}
    config = config_cls(attn_implementation="eager", num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                        hidden_size=width, intermediate_size=mlp, max_position_embeddings=context,
                        vocab_size=vocab, tie_word_embeddings=tied, **extra)
    swift = (f"TransformerConfig(layers: {layers}, heads: {heads}, kvHeads: {kv}, width: {width}, mlpWidth: {mlp}, "
             f"context: {context}, vocabularySize: {vocab}, positionEncoding: .rotary, norm: .rmsNorm, "
             f"activation: .swiglu, bias: {str(bias).lower()}, tiedEmbeddings: {str(tied).lower()})")
    if flops:
        return swift, measured_flops(cls(config), vocab, *flops)
    return swift, count(cls, config)


def main():
    rows = [
        ("gpt2-small", *gpt2(12, 12, 768, None, 1024, 50257)),
        ("gpt2-medium", *gpt2(24, 16, 1024, None, 1024, 50257)),
        ("gpt2-large", *gpt2(36, 20, 1280, None, 1024, 50257)),
        ("gpt2-xl", *gpt2(48, 25, 1600, None, 1024, 50257)),
        ("gpt3-175b", *gpt2(96, 96, 12288, None, 2048, 50257)),
        ("llama-7b", *llama(32, 32, 32, 4096, 11008, 2048, 32000)),
        ("llama-13b", *llama(40, 40, 40, 5120, 13824, 2048, 32000)),
        ("llama2-70b", *llama(80, 64, 8, 8192, 28672, 4096, 32000)),
        ("mistral-7b", *llama(32, 32, 8, 4096, 14336, 8192, 32000, mistral=True)),
    ]
    rng = random.Random(2026)
    for n in range(12):
        heads = rng.randint(1, 8)
        rows.append((f"random-gpt2-{n}", *gpt2(rng.randint(1, 4), heads, heads * rng.randint(1, 16), rng.randint(1, 200),
                                                rng.randint(1, 300), rng.randint(1, 500), tied=rng.random() < 0.5)))
    for n in range(12):
        kv = rng.randint(1, 4)
        heads = kv * rng.randint(1, 4)
        rows.append((f"random-llama-{n}", *llama(rng.randint(1, 4), heads, kv, heads * 2 * rng.randint(1, 8),
                                                  rng.randint(1, 200), rng.randint(1, 300), rng.randint(1, 500),
                                                  bias=rng.random() < 0.5, tied=rng.random() < 0.5)))
    torch.manual_seed(0)
    flop_rows = [
        ("gpt2", 3, 16, *gpt2(2, 4, 32, None, 64, 100, flops=(3, 16))),
        ("gpt2-untied", 2, 24, *gpt2(3, 2, 16, 40, 32, 50, tied=False, flops=(2, 24))),
        ("llama-gqa", 2, 20, *llama(2, 4, 2, 32, 72, 64, 90, flops=(2, 20))),
        ("llama-bias-tied", 1, 12, *llama(1, 6, 3, 24, 30, 16, 40, bias=True, tied=True, flops=(1, 12))),
    ]
    memory_rows = [
        ("gpt2", 3, 32, *gpt2(2, 4, 64, None, 64, 100, memory=(3, 32))),
        ("gpt2-untied", 2, 48, *gpt2(3, 2, 48, 100, 64, 70, tied=False, memory=(2, 48))),
    ]
    print("// Generated by scripts/make_estimates_fixtures.py with transformers "
          f"{transformers.__version__}, torch {torch.__version__}: parameter counts of")
    print("// Hugging Face GPT2LMHeadModel, LlamaForCausalLM and MistralForCausalLM built on the meta device,")
    print("// the forward/backward FLOPs torch.utils.flop_counter.FlopCounterMode counts for small ones, and the")
    print("// bytes of activations autograd saves for the backward pass of small GPT-2 models.")
    print("import Transformer\n")
    print("enum TransformersFixtures {")
    print("    static let models: [(name: String, config: TransformerConfig, parameters: Int)] = [")
    for name, swift, parameters in rows:
        print(f'        ("{name}", {swift}, {parameters}),')
    print("    ]")
    print("    static let flops: [(name: String, config: TransformerConfig, batch: Int, sequence: Int, forward: Int, backward: Int)] = [")
    for name, batch, seq, swift, (forward, backward) in flop_rows:
        print(f'        ("{name}", {swift}, {batch}, {seq}, {forward}, {backward}),')
    print("    ]")
    print("    static let savedActivations: [(name: String, config: TransformerConfig, batch: Int, sequence: Int, bytes: Int)] = [")
    for name, batch, seq, swift, saved in memory_rows:
        print(f'        ("{name}", {swift}, {batch}, {seq}, {saved}),')
    print("    ]")
    print("}")


if __name__ == "__main__":
    main()
