// Train a byte-pair-encoding tokenizer on a small text and round-trip a sentence through it.

import ModelFormats

// snippet.bpe
let corpus = String(repeating: "the quick brown fox jumps over the lazy dog. ", count: 50)
let bpe = try BPETokenizer.train(corpus: corpus, vocabularySize: 300)   // 256 bytes + 44 merges
let ids = bpe.encode("the lazy fox")
print(ids.count, "tokens:", ids)
print(bpe.decode(ids))                                                  // "the lazy fox"
// snippet.end

// snippet.checkpoint
// What a checkpoint stores next to the model, so its ids keep meaning the same text.
let stored = AnyTokenizer.bytePair(bpe)
// snippet.end

// snippet.hide
precondition(bpe.decode(ids) == "the lazy fox", "BPE round trip failed")
precondition(stored.encode("the lazy fox") == ids)
// snippet.show
