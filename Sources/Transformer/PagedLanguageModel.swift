import FlashCore

/// The tokens of several sequences for one forward pass against a paged KV cache: each
/// sequence contributes consecutive positions (a prefill chunk, one decode token, or a
/// speculative run to verify), whose keys and values the pass writes into its blocks.
public struct PagedBatch: Sendable {
    public struct Sequence: Sendable {
        /// Tokens at positions `start ..< start + tokens.count`.
        public var tokens: [Int]
        public var start: Int
        /// Block ids holding positions `0 ..< start + tokens.count`, in order.
        public var blockTable: [Int32]
        /// Logits wanted for the last `logitRows` tokens (0: none, e.g. an inner prefill chunk).
        public var logitRows: Int

        public init(tokens: [Int], start: Int, blockTable: [Int32], logitRows: Int) {
            self.tokens = tokens
            self.start = start
            self.blockTable = blockTable
            self.logitRows = logitRows
        }
    }

    public var sequences: [Sequence]
    public init(sequences: [Sequence]) { self.sequences = sequences }

    /// Token rows in the pass.
    public var rows: Int { sequences.reduce(0) { $0 + $1.tokens.count } }
    /// Logit rows returned.
    public var logitRows: Int { sequences.reduce(0) { $0 + $1.logitRows } }

    /// Throws `InvalidArgument` unless every sequence fits the model and the cache.
    func validate(vocabularySize: Int, contextLength: Int, cache: PagedKVCache) throws {
        for (s, sequence) in sequences.enumerated() {
            try InvalidArgument.require(!sequence.tokens.isEmpty, "sequences[\(s)].tokens", expected: "at least one token", got: "none")
            try InvalidArgument.require(sequence.start >= 0 && sequence.start + sequence.tokens.count <= contextLength,
                                        "sequences[\(s)]", expected: "positions within the context (\(contextLength))",
                                        got: "\(sequence.start) + \(sequence.tokens.count)")
            try InvalidArgument.require(sequence.logitRows >= 0 && sequence.logitRows <= sequence.tokens.count,
                                        "sequences[\(s)].logitRows", expected: "in 0...\(sequence.tokens.count)", got: "\(sequence.logitRows)")
            let blocks = (sequence.start + sequence.tokens.count + cache.blockSize - 1) / cache.blockSize
            try InvalidArgument.require(sequence.blockTable.count >= blocks, "sequences[\(s)].blockTable",
                                        expected: "≥ \(blocks) blocks", got: "\(sequence.blockTable.count)")
            for b in sequence.blockTable[..<blocks] {
                try InvalidArgument.require(b >= 0 && Int(b) < cache.blockCount, "sequences[\(s)].blockTable",
                                            expected: "ids in 0..<\(cache.blockCount)", got: "\(b)")
            }
            for (i, token) in sequence.tokens.enumerated() {
                try InvalidArgument.require(token >= 0 && token < vocabularySize, "sequences[\(s)].tokens[\(i)]",
                                            expected: "an id in 0..<\(vocabularySize)", got: "\(token)")
            }
        }
    }

    /// Per row: its sequence, its position, and the block table it reads.
    var rowPositions: [(sequence: Int, position: Int)] {
        sequences.enumerated().flatMap { s, sequence in (0..<sequence.tokens.count).map { (s, sequence.start + $0) } }
    }
}

extension PagedLanguageModel {
    /// A paged cache of the model's default element type.
    public func makePagedCache(blockCount: Int, blockSize: Int) throws -> PagedKVCache {
        try makePagedCache(blockCount: blockCount, blockSize: blockSize, elementType: defaultKVCacheType)
    }
}

/// A decoder a serving engine can run: one forward pass over the tokens of many sequences
/// against a paged KV cache. GGUF LLaMA models (`LlamaModel`) and models trained here
/// (`TransformerModel`) both implement it, so one engine serves both.
///
/// Contract (batch invariance): the logits and cached keys/values of a sequence's row are
/// bit-for-bit the same whichever other sequences share the pass, however its earlier
/// positions were chunked, and wherever its blocks lie. Every per-row operation (products,
/// norms, attention) has an order of arithmetic fixed by that row alone.
public protocol PagedLanguageModel: AnyObject {
    var vocabularySize: Int { get }
    /// Positions a sequence may hold.
    var contextLength: Int { get }
    /// The element type of this model's paged cache when the caller does not choose one:
    /// Float16 for GGUF models (llama.cpp's default cache type), Float32 for models trained here
    /// (their engine output then equals the whole-context reference path token for token).
    var defaultKVCacheType: ElementType { get }
    /// A paged cache shaped for this model, of `elementType` (`.float32` or `.float16`).
    func makePagedCache(blockCount: Int, blockSize: Int, elementType: ElementType) throws -> PagedKVCache
    /// Runs `batch`, writes its keys and values into `cache`, and returns the logits of each
    /// sequence's last `logitRows` rows, in order (`batch.logitRows × vocabularySize` floats).
    func forward(_ batch: PagedBatch, cache: PagedKVCache) throws -> [Float]
}
