import Foundation
import Transformer

/// What the server serves, filled in once loading finishes: `/health` answers 503 until then.
public final class ModelSlot: @unchecked Sendable {
    public enum State: Sendable {
        case loading
        case ready
        case failed(String)
    }

    private let lock = NSLock()
    private var _model: ServedModel?
    private var _embedder: Embedder?
    private var _state: State = .loading

    public init() {}

    public var state: State { lock.withLock { _state } }
    public var model: ServedModel? { lock.withLock { _model } }
    public var embedder: Embedder? { lock.withLock { _embedder } }

    /// Publishes the loaded model (and embedding model); the server is ready from now on.
    public func finishLoading(model: ServedModel, embedder: Embedder? = nil) {
        lock.withLock {
            _model = model
            _embedder = embedder
            _state = .ready
        }
    }

    public func failLoading(_ message: String) { lock.withLock { _state = .failed(message) } }
}

/// A BERT sentence-transformers model for `/v1/embeddings`. Requests run one at a time on a
/// serial queue of their own, off Swift's cooperative threads.
public final class Embedder: Sendable {
    public let id: String
    public let encoder: BertSentenceEncoder
    private let queue = DispatchQueue(label: "flash-serve-embeddings")
    private let threads: Int?

    public init(directory: String, threads: Int? = nil) throws {
        encoder = try BertSentenceEncoder(directory: directory)
        id = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        self.threads = threads
    }

    /// Embeddings of `texts` and how many tokens they held.
    func embed(_ texts: [String]) async throws -> (vectors: [[Float]], tokens: Int) {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [encoder, threads] in
                do {
                    let ids = try texts.map { try encoder.tokenize($0) }
                    let vectors = try encoder.embed(tokenIDs: ids, threads: threads)
                    continuation.resume(returning: (vectors, ids.reduce(0) { $0 + $1.count }))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}
