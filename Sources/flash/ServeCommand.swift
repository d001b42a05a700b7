import ArgumentParser
import Foundation
import FlashCore
import Serving
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
            Requests run on the batching engine (module Serving): a paged KV cache of \
            --kv-cache-tokens positions in blocks of --block-size, up to --parallel sequences \
            decoded together in one pass over the weights per step (continuous batching: \
            finished ones leave and waiting ones join every step), prompts prefilled in chunks \
            of at most --max-batch-tokens rows per step, shared prompt prefixes reused from the \
            cache, the newest sequence preempted (and recomputed later) when blocks run out. Up \
            to --max-waiting requests wait for a slot; more get 503. --speculative ngram|draft \
            guesses --draft-tokens tokens per step that the model verifies in the same pass \
            (output unchanged; draft needs --draft-gguf or --draft-checkpoint with the same \
            vocabulary).
            """)

    @Option(help: "LLaMA-family GGUF model file.") var gguf: String?
    @Option(help: "Checkpoint directory written by `flash train`.") var checkpoint: String?
    @Option(help: "Address to listen on (loopback by default; 0.0.0.0 exposes the server to the network).") var host = "127.0.0.1"
    @Option(help: "TCP port (0: any free port, printed when listening).") var port = 8080
    @Option(help: "Sequences decoded together at most (a request with n samples counts n): more = more throughput, slower per stream.") var parallel = 8
    @Option(name: .customLong("kv-cache-tokens"), help: "Positions the KV cache pool holds across all sequences (default: 16384, or the context length if larger): more = more long sequences at once, more memory.") var kvCacheTokens: Int?
    @Option(name: .customLong("block-size"), help: "Positions per KV cache block: smaller = less memory lost in partly filled blocks and finer prefix reuse, more table lookups.") var blockSize = 16
    @Option(name: .customLong("max-batch-tokens"), help: "Rows one step computes at most (decodes first, then prompt chunks): smaller = running streams stall less behind a long prompt, slower prefill.") var maxBatchTokens = 256
    @Option(name: .customLong("max-waiting"), help: "Requests that may wait for a slot (≥ 1); beyond that they get 503 at once.") var maxWaiting = 64
    @Flag(name: .customLong("no-prefix-caching"), help: "Do not reuse the KV blocks of prompt prefixes seen before.") var noPrefixCaching = false
    @OptionGroup var speculation: SpeculationOptions
    @OptionGroup var kvCache: KVCacheOptions
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
        if maxWaiting < 1 { throw ValidationError("--max-waiting must be ≥ 1, got \(maxWaiting)") }
        if maxBatchTokens < 1 { throw ValidationError("--max-batch-tokens must be ≥ 1, got \(maxBatchTokens)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
        if let apiKey, apiKey.isEmpty { throw ValidationError("--api-key must not be empty") }
        if !(shutdownGrace >= 0 && shutdownGrace <= 3600) { throw ValidationError("--shutdown-grace must be in 0...3600 seconds, got \(shutdownGrace)") }
        for (flag, path) in [("--gguf", gguf), ("--checkpoint", checkpoint), ("--embedding-model", embeddingModel),
                             ("--draft-gguf", speculation.draftGGUF), ("--draft-checkpoint", speculation.draftCheckpoint)] {
            if let path, !FileManager.default.fileExists(atPath: path) { throw ValidationError("\(flag): no such file or directory: \(path)") }
        }
    }

    func run() async throws {
        let (kvCacheTokens, modelName, embeddingModel, threads) = (self.kvCacheTokens, self.modelName, self.embeddingModel, self.threads)
        if let threads { Parallel.defaultThreads = threads }
        let source: ModelSource = gguf.map { .gguf($0) } ?? .checkpoint(checkpoint ?? "")
        let draft = speculation.draft
        let configuration = ServingConfiguration(
            blockSize: blockSize, maxRunning: parallel, maxBatchTokens: maxBatchTokens, maxWaiting: maxWaiting,
            prefixCaching: !noPrefixCaching, threads: threads,
            speculation: speculation.method, speculativeTokens: speculation.draftTokens, kvCacheType: kvCache.elementType)
        let runner = ServeRunner(
            host: host, port: port, options: ServerOptions(apiKey: apiKey),
            shutdownGrace: .milliseconds(Int64(shutdownGrace * 1000)),
            load: {
                let served = try ServedModel.load(source, id: modelName, draft: draft, configuration: configuration,
                                                  cacheTokens: { kvCacheTokens ?? max(16384, $0) })
                let embedder = try embeddingModel.map { try Embedder(directory: $0, threads: threads) }
                return (served, embedder)
            })
        try await runner.run()
    }
}
