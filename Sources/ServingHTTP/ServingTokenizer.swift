import Foundation
import ModelFormats
import Transformer

/// Text ↔ token ids for the served model.
public protocol ServingTokenizer: Sendable {
    /// Prompt text to ids, as `flash generate` encodes it; `special` parses special-token text
    /// (chat templates) into their ids.
    func encode(_ text: String, special: Bool) -> [Int]
    /// The bytes a token stands for in generated text (special tokens: none).
    func textBytes(of token: Int) -> [UInt8]
    /// The token's own spelling, for log-probability listings.
    func spelling(of token: Int) -> String
    /// Tokens that end a turn (end of sequence, end of turn).
    var endOfGenerationTokens: Set<Int> { get }
    /// The prompt text for a conversation, ending with the opening of the assistant's turn.
    func chatPrompt(_ messages: [ChatMessage]) throws -> String
}

/// The GGUF file's tokenizer and chat template.
public struct GGUFServingTokenizer: ServingTokenizer {
    public let tokenizer: GGUFTokenizer
    public init(tokenizer: GGUFTokenizer) { self.tokenizer = tokenizer }
    public func encode(_ text: String, special: Bool) -> [Int] { tokenizer.encode(text, parseSpecial: special) }
    public func textBytes(of token: Int) -> [UInt8] { tokenizer.bytes(of: token, skipSpecial: true) }
    public func spelling(of token: Int) -> String { String(decoding: tokenizer.bytes(of: token), as: UTF8.self) }
    public var endOfGenerationTokens: Set<Int> { tokenizer.endOfGenerationTokens }
    public func chatPrompt(_ messages: [ChatMessage]) throws -> String { try tokenizer.applyChatTemplate(messages) }
}

/// A checkpoint's tokenizer. It has no chat template: a conversation is its messages' contents,
/// one per line, which is what a model trained on plain text can continue.
public struct CheckpointServingTokenizer: ServingTokenizer {
    public let tokenizer: AnyTokenizer
    public init(tokenizer: AnyTokenizer) { self.tokenizer = tokenizer }
    public func encode(_ text: String, special: Bool) -> [Int] { tokenizer.encode(text) }
    /// A byte-level BPE token's own bytes (possibly part of a character), a character token's UTF-8.
    public func textBytes(of token: Int) -> [UInt8] {
        if case .bytePair(let bpe) = tokenizer { return bpe.bytes(of: token) }
        return Array(tokenizer.decode([token]).utf8)
    }
    public func spelling(of token: Int) -> String { tokenizer.decode([token]) }
    public var endOfGenerationTokens: Set<Int> { [] }
    public func chatPrompt(_ messages: [ChatMessage]) throws -> String {
        messages.map(\.content).joined(separator: "\n") + "\n"
    }
}
