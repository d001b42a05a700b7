import Foundation
import FlashCore
import ModelFormats
import Transformer

/// A decoder the sequential engine drives one sequence at a time: a fresh cache per sequence,
/// the prompt in one pass, then one token per pass. Returns the last position's logits.
protocol DecoderModel: AnyObject {
    var contextLength: Int { get }
    var vocabularySize: Int { get }
    func startSequence(capacity: Int) throws -> DecoderSequence
}

protocol DecoderSequence: AnyObject {
    /// Appends `tokens` after those already processed; the logits of the last one.
    func forward(_ tokens: [Int]) throws -> [Float]
}

/// A LLaMA-family GGUF model over a paged KV cache of its own per sequence: the same paged
/// forward pass as `flash generate --gguf` (which runs the batching scheduler), so greedy output
/// here is token for token that command's. (The contiguous `LlamaModel.forward` attends with the
/// flash prefill kernel instead, whose different summation order the 8-bit activations can turn
/// into a different greedy token.)
final class GGUFDecoder: DecoderModel {
    let model: LlamaModel
    init(model: LlamaModel) { self.model = model }
    var contextLength: Int { model.configuration.contextLength }
    var vocabularySize: Int { model.configuration.vocabularySize }

    func startSequence(capacity: Int) throws -> DecoderSequence {
        let blockSize = 16
        let blocks = max(1, (capacity + blockSize - 1) / blockSize)
        return Sequence(model: model, cache: try model.makePagedCache(blockCount: blocks, blockSize: blockSize),
                        blockTable: (0..<blocks).map(Int32.init))
    }

    final class Sequence: DecoderSequence {
        let model: LlamaModel
        let cache: PagedKVCache
        let blockTable: [Int32]
        var position = 0
        init(model: LlamaModel, cache: PagedKVCache, blockTable: [Int32]) {
            self.model = model
            self.cache = cache
            self.blockTable = blockTable
        }
        func forward(_ tokens: [Int]) throws -> [Float] {
            let logits = try model.forward(PagedBatch(sequences: [
                .init(tokens: tokens, start: position, blockTable: blockTable, logitRows: 1),
            ]), cache: cache)
            position += tokens.count
            return logits
        }
    }
}

/// A model trained by `flash train` with its KV cache (`flash generate --checkpoint`'s path).
/// The server never slides the window: a sequence ends at the model's context.
final class CheckpointDecoder: DecoderModel {
    let model: TransformerModel
    init(model: TransformerModel) { self.model = model }
    var contextLength: Int { model.config.context }
    var vocabularySize: Int { model.config.vocabularySize }

    func startSequence(capacity: Int) throws -> DecoderSequence {
        Sequence(model: model, cache: try KVCache(config: model.config, capacity: capacity))
    }

    final class Sequence: DecoderSequence {
        let model: TransformerModel
        let cache: KVCache
        init(model: TransformerModel, cache: KVCache) {
            self.model = model
            self.cache = cache
        }
        func forward(_ tokens: [Int]) throws -> [Float] {
            _ = try model.forward(tokens: tokens.map(Int32.init), batch: 1, time: tokens.count, mode: .inference, cache: cache)
            return Array(model.logits(row: tokens.count - 1))
        }
    }
}

/// The GGUF file's tokenizer and chat template.
struct GGUFServingTokenizer: ServingTokenizer, @unchecked Sendable {
    let tokenizer: GGUFTokenizer
    func encode(_ text: String, special: Bool) -> [Int] { tokenizer.encode(text, parseSpecial: special) }
    func textBytes(of token: Int) -> [UInt8] { tokenizer.bytes(of: token, skipSpecial: true) }
    func spelling(of token: Int) -> String { String(decoding: tokenizer.bytes(of: token), as: UTF8.self) }
    var endOfGenerationTokens: Set<Int> { tokenizer.endOfGenerationTokens }
    func chatPrompt(_ messages: [ChatMessage]) throws -> String { try tokenizer.applyChatTemplate(messages) }
}

/// A checkpoint's tokenizer. It has no chat template: a conversation is its messages' contents,
/// one per line, which is what a model trained on plain text can continue.
struct CheckpointServingTokenizer: ServingTokenizer, @unchecked Sendable {
    let tokenizer: AnyTokenizer
    func encode(_ text: String, special: Bool) -> [Int] { tokenizer.encode(text) }
    func textBytes(of token: Int) -> [UInt8] { Array(tokenizer.decode([token]).utf8) }
    func spelling(of token: Int) -> String { tokenizer.decode([token]) }
    var endOfGenerationTokens: Set<Int> { [] }
    func chatPrompt(_ messages: [ChatMessage]) throws -> String {
        messages.map(\.content).joined(separator: "\n") + "\n"
    }
}
