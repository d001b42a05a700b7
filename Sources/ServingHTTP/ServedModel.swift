import Foundation
import FlashCore
import ModelFormats
import Serving
import Transformer

/// The model behind the server: its id, the batching `ServingEngine` that runs it (paged KV
/// cache, continuous batching, prefix caching, speculation), and its tokenizer. The server
/// works in text, the engine in token ids; requests, events, statistics and refusals are the
/// engine's own types (`GenerationRequest`, `GenerationEvent`, `EngineStatistics`,
/// `ServingError`).
public final class ServedModel: Sendable {
    public let id: String
    public let engine: ServingEngine
    public let tokenizer: any ServingTokenizer

    public init(id: String, engine: ServingEngine, tokenizer: any ServingTokenizer) {
        self.id = id
        self.engine = engine
        self.tokenizer = tokenizer
    }

    public var contextLength: Int { engine.contextLength }
    public var vocabularySize: Int { engine.vocabularySize }
}

/// A model file or directory the server can load: the target, or a speculative draft.
public enum ModelSource: Sendable, Equatable {
    /// A LLaMA-family GGUF file (`--gguf`, `--draft-gguf`).
    case gguf(String)
    /// A directory written by `flash train` (`--checkpoint`, `--draft-checkpoint`).
    case checkpoint(String)

    var path: String {
        switch self {
        case .gguf(let path), .checkpoint(let path): path
        }
    }

    /// The model id a server reports by default: the file name without extension, or the directory name.
    public var defaultID: String {
        switch self {
        case .gguf(let path): URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        case .checkpoint(let path): URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent
        }
    }

    /// Loads the decoder (the paged forward pass the engine runs) and its tokenizer.
    public func load(threads: Int?) throws -> (model: any PagedLanguageModel, tokenizer: any ServingTokenizer) {
        switch self {
        case .gguf(let path):
            let file = try GGUFFile(path: path)
            return (try LlamaModel(file: file, threads: threads), GGUFServingTokenizer(tokenizer: try GGUFTokenizer(file: file)))
        case .checkpoint(let directory):
            let model = try Checkpoint.loadModel(from: directory)
            model.attentionImplementation = .flash
            model.threads = threads
            let tokenizer = try JSONDecoder().decode(AnyTokenizer.self, from: Checkpoint.loadTokenizerJSON(from: directory))
            return (model, CheckpointServingTokenizer(tokenizer: tokenizer))
        }
    }
}

extension ServedModel {
    /// Loads `source` (and the draft model of `.draft` speculation) and starts its engine.
    /// `cacheTokens`, given the model's context length, sizes the KV pool (else
    /// `configuration.blockCount` does). `draft.flag` names the option the draft came from, for
    /// the error when its vocabulary is not the target's.
    public static func load(_ source: ModelSource, id: String? = nil, draft: (source: ModelSource, flag: String)? = nil,
                            configuration: ServingConfiguration,
                            cacheTokens: ((_ contextLength: Int) -> Int)? = nil) throws -> ServedModel {
        let threads = configuration.threads
        let (model, tokenizer) = try source.load(threads: threads)
        var configuration = configuration
        if let cacheTokens {
            configuration.blockCount = ServingConfiguration.blocks(forTokens: cacheTokens(model.contextLength),
                                                                   blockSize: configuration.blockSize)
        }
        var draftModel: (any PagedLanguageModel)?
        if let draft {
            let loaded = try draft.source.load(threads: threads).model
            try InvalidArgument.require(loaded.vocabularySize == model.vocabularySize, draft.flag,
                                        expected: "a draft model with the target's vocabulary (\(model.vocabularySize) tokens)",
                                        got: "\(loaded.vocabularySize) tokens in \(draft.source.path)")
            draftModel = loaded
        }
        let engine = try ServingEngine(model: model, draft: draftModel, configuration: configuration)
        return ServedModel(id: id ?? source.defaultID, engine: engine, tokenizer: tokenizer)
    }
}
