#!/usr/bin/env python3
"""Writes Sources/Transformer/Corpus/corpus.txt: the demo's training text.

Every sentence comes from templates written for this project (no outside text, no downloads):
a seeded random walk over topics picks templates and fills their slots, giving a few hundred KB
of varied, grammatical English about attention, transformers, FlashAttention, GEMM and training.
Deterministic: the same seed writes the same file.

    python3 scripts/make_corpus.py [--seed 2026] [--kilobytes 320]
"""
import argparse
import os
import random

SLOTS = {
    "model": ["the transformer", "a small language model", "the decoder", "a GPT-style model", "the network",
              "our model", "a six-layer model", "the tiny model", "a character-level model", "the encoder"],
    "part": ["the attention layer", "the MLP block", "the embedding table", "the output head", "the layer norm",
             "the residual stream", "the softmax", "the key cache", "the value projection", "the query projection"],
    "op": ["a matrix multiply", "a softmax", "a layer norm", "a GELU", "an embedding lookup", "a reduction",
           "an elementwise add", "a transpose", "a dot product", "a scaled sum"],
    "num": ["two", "four", "six", "eight", "twelve", "sixteen", "thirty-two", "sixty-four"],
    "size": ["64", "128", "256", "512", "1024", "2048", "4096", "8192", "16384"],
    "adj": ["fast", "slow", "careful", "simple", "exact", "stable", "wide", "narrow", "deep", "shallow", "cheap", "costly"],
    "mem": ["the cache", "main memory", "the registers", "the L2 cache", "on-chip memory", "the heap", "a small buffer"],
    "verb": ["computes", "reads", "writes", "stores", "updates", "scales", "normalises", "adds", "multiplies", "reuses"],
    "thing": ["the scores", "the weights", "the gradients", "the logits", "the activations", "the tiles",
              "the running maximum", "the log-sum-exp", "the partial sums", "the outputs"],
    "person": ["the engineer", "a student", "the reader", "the researcher", "a careful programmer", "the author",
               "a new contributor", "the reviewer"],
    "feel": ["is pleased", "is surprised", "is patient", "is curious", "is cautious", "is confident"],
    "time": ["at first", "after a while", "in the end", "during training", "at every step", "before the run",
             "after warmup", "on the next epoch"],
    "opt": ["AdamW", "plain SGD", "Adam with weight decay", "momentum SGD", "a cosine schedule", "a linear warmup"],
    "quality": ["the loss", "the perplexity", "the accuracy", "the gradient norm", "the learning rate", "the throughput"],
    "trend": ["falls", "rises", "settles", "wobbles", "drops quickly", "climbs slowly", "stays flat", "improves"],
}

TOPICS = {
    "attention": [
        "Attention lets every {thing_noun} look at every other position in the sequence.",
        "Each query is compared with each key, and the scores decide how much of each value to mix in.",
        "The scores are divided by the square root of the head dimension so that the softmax stays {adj}.",
        "{part_cap} {verb} {thing} before the next block sees them.",
        "With a causal mask, position {size} may only attend to positions at or before it.",
        "A model with {num} heads splits its width into {num} smaller attention problems.",
        "Grouped-query attention shares each key head among several query heads, which saves memory in the cache.",
        "The softmax turns a row of scores into weights that are positive and sum to one.",
        "When the sequence has {size} tokens, the score matrix has {size} rows and {size} columns.",
        "Multi-query attention keeps a single key head and a single value head for all the query heads.",
        "A sliding window limits each query to the nearest keys, so the cost grows linearly with length.",
        "ALiBi adds a penalty that grows with distance, and it needs no position embedding at all.",
        "Soft-capping squashes very large logits with a hyperbolic tangent before the softmax.",
        "A padding mask hides the keys that are only there to fill the batch.",
        "The output of attention is a weighted average of the values, one for every query.",
        "Rotary embeddings rotate queries and keys by an angle that depends on their position.",
    ],
    "flash": [
        "FlashAttention never writes the full score matrix to {mem}.",
        "Instead it walks over tiles of keys and values and keeps {thing} in {mem}.",
        "The online softmax keeps a running maximum and a running sum, and rescales the output when the maximum grows.",
        "Because the tiles fit in {mem}, each byte of the keys is read only once per block of queries.",
        "The backward pass recomputes the probabilities from the saved log-sum-exp instead of storing them.",
        "Memory for attention grows linearly with the sequence length when the kernel is tiled.",
        "The standard algorithm needs space for {size} by {size} scores, while the tiled one needs only a few tiles.",
        "A tile of {size} queries and {size} keys is small enough to stay in {mem}.",
        "The exact same numbers come out of both algorithms, up to rounding in the last bits.",
        "FlashAttention is not an approximation: it computes exact attention with fewer trips to memory.",
        "The log-sum-exp of each row is all the backward pass needs to rebuild the softmax.",
        "{person_cap} {feel} to see the tiled kernel run {adj} on long sequences.",
        "At {size} tokens the standard kernel spends most of its time moving {thing} through {mem}.",
    ],
    "gemm": [
        "Most of the arithmetic in {model} is {op_gemm}.",
        "A general matrix multiply reads two matrices and writes a third.",
        "A good GEMM packs small panels of each matrix so that the inner loop streams through {mem}.",
        "The micro-kernel keeps a block of the output in {mem} and adds one rank-one update at a time.",
        "Vector units multiply and add sixteen floats in one instruction on this machine.",
        "Blocking for the cache turns a memory-bound loop into a compute-bound one.",
        "{op_cap} is cheap compared with a matrix multiply of width {size}.",
        "The number of floating-point operations in a matrix multiply is twice the product of its three sizes.",
        "Threads split the output into strips, and each thread computes its own strip.",
        "When the matrices are small, the overhead of starting threads can cost more than the arithmetic.",
        "A fused multiply-add rounds once, which makes it both {adj} and accurate.",
    ],
    "transformer": [
        "{model_cap} is a stack of blocks, and each block has attention followed by an MLP.",
        "The residual stream carries information from the embedding to the output head.",
        "A pre-norm block normalises its input before attention and again before the MLP.",
        "The MLP widens each token to four times the model width and then narrows it again.",
        "The output head turns the final hidden state into one logit for every token in the vocabulary.",
        "Tied embeddings use the same matrix for the input table and the output head.",
        "{model_cap} with {num} layers and a width of {size} is small enough to train on a laptop.",
        "Layer norm subtracts the mean and divides by the standard deviation of each token's features.",
        "GELU is a smooth activation that lets small negative values through.",
        "Learned position embeddings give each of the first {size} positions its own vector.",
        "The key and value cache lets {model} generate one token at a time without recomputing the past.",
        "{part_cap} holds most of the parameters in {model}.",
    ],
    "training": [
        "{time_cap}, {quality} {trend}.",
        "We train with {opt} and a batch of {num} sequences.",
        "The gradient of the loss with respect to each weight is computed by the backward pass.",
        "Cross-entropy measures how surprised the model is by the next token.",
        "{person_cap} watches {quality} {time} and {feel}.",
        "Gradient clipping keeps a single bad batch from ruining the run.",
        "Weight decay pulls the weights gently towards zero.",
        "A checkpoint stores the weights, the optimizer state and the configuration of the model.",
        "The tokenizer must be saved with the model, or the ids will mean nothing.",
        "Sampling with a temperature below one makes the text more predictable.",
        "Top-k sampling keeps only the k most likely tokens before drawing one.",
        "Nucleus sampling keeps the smallest set of tokens whose probability adds up to p.",
        "With a fixed seed, the same prompt gives the same sample every time.",
        "The validation loss tells us whether the model has learned or merely memorised.",
        "{time_cap}, {person} checks that the gradients match finite differences.",
        "Each step reads a batch of {size} tokens, runs the forward pass, and then the backward pass.",
    ],
    "engineering": [
        "Every kernel is checked against a slow reference that is easy to read.",
        "{person_cap} writes a test before trusting a {adj} kernel.",
        "A benchmark compares the new code with a trusted peer in the same run.",
        "Numbers measured on a busy machine drift, so ratios are more honest than times.",
        "The command line is a thin layer over the libraries.",
        "Bad input should produce a clear message that names the argument, never a crash.",
        "Memory is cheap until it runs out, and then nothing else matters.",
        "A {adj} loop in Swift can be as quick as one in C when the compiler can see the vector width.",
        "The file format stores a small JSON header followed by the raw numbers.",
        "{person_cap} reads the profile and finds that {op} takes most of the time.",
    ],
}

CONNECTIVES = ["", "", "", "In practice, ", "Note that ", "As a result, ", "For example, ", "In other words, ",
               "Meanwhile, ", "Put simply, ", "Of course, ", "This is why ", "Remember that "]
QUESTIONS = ["Why does this matter?", "What happens at longer lengths?", "How much memory does it take?",
             "Is the result exact?", "What does the model learn first?", "Where does the time go?"]


def fill(template, rng):
    out = template
    for name, values in SLOTS.items():
        for variant, transform in ((name + "_cap", lambda s: s[0].upper() + s[1:]), (name, lambda s: s)):
            while "{" + variant + "}" in out:
                out = out.replace("{" + variant + "}", transform(rng.choice(values)), 1)
    out = out.replace("{thing_noun}", rng.choice(["token", "word", "position", "query"]))
    out = out.replace("{op_gemm}", rng.choice(["matrix multiplication", "GEMM", "dense linear algebra"]))
    out = out.replace("{op_cap}", rng.choice(["A softmax", "A layer norm", "An elementwise add", "A GELU"]))
    return out


def sentence(topic, rng):
    text = fill(rng.choice(TOPICS[topic]), rng)
    connective = rng.choice(CONNECTIVES)
    if connective and connective != "This is why ":
        text = connective + text[0].lower() + text[1:] if not text.startswith(("FlashAttention", "GELU", "ALiBi", "A GEMM")) else connective + text
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--kilobytes", type=int, default=320)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "..", "Sources", "Transformer", "Corpus", "corpus.txt"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    topics = list(TOPICS)
    topic = rng.choice(topics)
    paragraphs, size = [], 0
    while size < args.kilobytes * 1024:
        if rng.random() < 0.35:
            topic = rng.choice(topics)
        sentences = [sentence(topic, rng) for _ in range(rng.randint(3, 7))]
        if rng.random() < 0.15:
            sentences.insert(rng.randint(0, len(sentences)), rng.choice(QUESTIONS))
        paragraph = " ".join(sentences)
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n\n".join(paragraphs) + "\n")
    print(f"wrote {args.output}: {size} bytes, {len(paragraphs)} paragraphs")


if __name__ == "__main__":
    main()
