import ArgumentParser
import Foundation
import FlashCore
import ServingHTTP

/// `flash serve`: an OpenAI-compatible HTTP server over a GGUF model or a trained checkpoint.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model over an OpenAI-compatible HTTP API (completions, chat, embeddings, metrics).",
        discussion: """
            Give exactly one of --gguf FILE or --checkpoint DIR. The server listens at once \
            (GET /health answers 503 while the model loads, 200 after) and prints its address \
            and a "ready" line to stderr. Endpoints: POST /v1/completions, POST \
            /v1/chat/completions (the GGUF's chat template), GET /v1/models, POST /v1/embeddings \
            (with --embedding-model), GET /metrics (Prometheus), GET /health; the API is \
            documented in docs/openapi.yaml. SIGINT/SIGTERM: stop taking requests, give running \
            ones --shutdown-grace seconds, cancel the rest, exit 0.
            Requests now run one at a time (one sequence, real model output) with up to \
            --max-waiting more queued; more get 503. --parallel, --kv-cache-tokens and \
            --block-size are validated and take effect with the batching engine (paged KV \
            cache, continuous batching), which replaces the one-at-a-time engine.
            """)

    @Option(help: "LLaMA-family GGUF model file.") var gguf: String?
    @Option(help: "Checkpoint directory written by `flash train`.") var checkpoint: String?
    @Option(help: "Address to listen on (loopback by default; 0.0.0.0 exposes the server to the network).") var host = "127.0.0.1"
    @Option(help: "TCP port (0: any free port, printed when listening).") var port = 8080
    @Option(help: "Sequences decoded together (batching engine; more = more throughput, slower per stream).") var parallel = 8
    @Option(name: .customLong("kv-cache-tokens"), help: "Tokens the KV cache pool holds across all sequences (batching engine; default: parallel × context).") var kvCacheTokens: Int?
    @Option(name: .customLong("block-size"), help: "Tokens per KV cache block (batching engine; smaller = less waste, more table lookups).") var blockSize = 16
    @Option(name: .customLong("max-waiting"), help: "Requests that may wait for a free slot; beyond that they get 503.") var maxWaiting = 64
    @Option(name: .customLong("api-key"), help: "Require 'Authorization: Bearer KEY' on every route but /health.") var apiKey: String?
    @Option(help: "Threads for the model's matrix products (default: all cores).") var threads: Int?
    @Option(name: .customLong("embedding-model"), help: "BERT sentence-transformers directory served by /v1/embeddings.") var embeddingModel: String?
    @Option(name: .customLong("model-name"), help: "Model id reported by /v1/models and in responses (default: the file or directory name).") var modelName: String?
    @Option(name: .customLong("shutdown-grace"), help: "Seconds running requests may take to finish after SIGINT/SIGTERM before they are cancelled.") var shutdownGrace = 10.0

    func validate() throws {
        if (checkpoint == nil) == (gguf == nil) { throw ValidationError("give exactly one of --gguf FILE or --checkpoint DIR") }
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535, got \(port)") }
        if parallel < 1 { throw ValidationError("--parallel must be ≥ 1, got \(parallel)") }
        if blockSize < 1 || blockSize > 1024 { throw ValidationError("--block-size must be in 1...1024, got \(blockSize)") }
        if let kvCacheTokens, kvCacheTokens < blockSize {
            throw ValidationError("--kv-cache-tokens must be ≥ --block-size (\(blockSize)), got \(kvCacheTokens)")
        }
        if maxWaiting < 0 { throw ValidationError("--max-waiting must be ≥ 0, got \(maxWaiting)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
        if let apiKey, apiKey.isEmpty { throw ValidationError("--api-key must not be empty") }
        if !(shutdownGrace >= 0 && shutdownGrace <= 3600) { throw ValidationError("--shutdown-grace must be in 0...3600 seconds, got \(shutdownGrace)") }
        for (flag, path) in [("--gguf", gguf), ("--checkpoint", checkpoint), ("--embedding-model", embeddingModel)] {
            if let path, !FileManager.default.fileExists(atPath: path) { throw ValidationError("\(flag): no such file or directory: \(path)") }
        }
    }

    func run() async throws {
        if let threads { Parallel.defaultThreads = threads }
        let (gguf, checkpoint, threads, maxWaiting, modelName, embeddingModel) =
            (self.gguf, self.checkpoint, self.threads, self.maxWaiting, self.modelName, self.embeddingModel)
        let runner = ServeRunner(
            host: host, port: port, options: ServerOptions(apiKey: apiKey),
            shutdownGrace: .milliseconds(Int64(shutdownGrace * 1000)),
            load: {
                let engine: any InferenceEngine = if let gguf {
                    try SequentialEngine(gguf: gguf, modelID: modelName, threads: threads, maxWaiting: maxWaiting)
                } else {
                    try SequentialEngine(checkpoint: checkpoint!, modelID: modelName, threads: threads, maxWaiting: maxWaiting)
                }
                let embedder = try embeddingModel.map { try Embedder(directory: $0, threads: threads) }
                return (engine, embedder)
            })
        try await runner.run()
    }
}
