import ArgumentParser
import Foundation
import FlashCore
import ModelFormats
import Serving
import Transformer

/// `flash bench generate`: prefill and decode speed of a GGUF model (SmolLM2-135M by default),
/// measured on the path `flash generate` and `flash serve` run: the serving engine's scheduler
/// over the paged KV cache, one greedy request, the prompt in one pass, then one token per pass.
struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Prefill tokens/s (a 512-token prompt) and decode tokens/s of a GGUF model.",
        discussion: """
            Runs what `flash generate --gguf` runs (the serving engine's scheduler, paged KV cache), \
            greedy, with no stop token, so exactly --decode-tokens tokens follow the prompt.
            """)

    @Option(name: .customLong("gguf"), help: "The GGUF model (default: SmolLM2-135M-Instruct.Q4_1.gguf in FLASH_MODEL_CACHE or ~/.cache/flash-models).")
    var gguf: String?
    @Option(name: .customLong("prompt-tokens"), help: "Prompt length for the prefill measurement.")
    var promptTokens = 512
    @Option(name: .customLong("decode-tokens"), help: "Tokens to decode after the prompt.")
    var decodeTokens = 64
    @Option(help: "Timed repetitions; the best is reported.")
    var repeats = 3
    @Option(help: "Threads (default: FLASH_THREADS or all cores).")
    var threads: Int?
    @OptionGroup var kvCache: KVCacheOptions
    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        try InvalidArgument.require(promptTokens >= 1, "--prompt-tokens", expected: "≥ 1", got: "\(promptTokens)")
        try InvalidArgument.require(decodeTokens >= 1, "--decode-tokens", expected: "≥ 1", got: "\(decodeTokens)")
        try InvalidArgument.require(repeats >= 1, "--repeats", expected: "≥ 1", got: "\(repeats)")
        if let threads { try InvalidArgument.require(threads >= 1, "--threads", expected: "≥ 1", got: "\(threads)") }
        let path = gguf ?? ((ProcessInfo.processInfo.environment["FLASH_MODEL_CACHE"] ?? NSHomeDirectory() + "/.cache/flash-models")
            + "/SmolLM2-135M-Instruct.Q4_1.gguf")
        let file = try GGUFFile(path: path)
        let model = try LlamaModel(file: file, threads: threads)
        let tokenizer = try GGUFTokenizer(file: file)
        // A natural-text prompt of exactly `promptTokens` tokens (the same ids bench_generate.py uses).
        let ids = Self.promptIDs(tokenizer: tokenizer, count: promptTokens)
        let capacity = promptTokens + decodeTokens + 1
        try InvalidArgument.require(capacity <= model.contextLength, "--prompt-tokens + --decode-tokens",
                                    expected: "less than the model's context (\(model.contextLength) tokens)", got: "\(capacity - 1)")
        let cacheType = kvCache.elementType ?? model.defaultKVCacheType
        var bestPrefill = Double.infinity, bestDecode = Double.infinity
        for _ in 0..<repeats {
            let scheduler = try Scheduler(model: model, configuration: ServingConfiguration(
                blockSize: 16, blockCount: ServingConfiguration.blocks(forTokens: capacity), maxRunning: 1,
                maxBatchTokens: promptTokens, maxWaiting: 1, prefixCaching: false, threads: threads,
                kvCacheType: cacheType))
            // The first token comes from the prefill's logits; the decode clock starts there.
            let start = Date()
            var firstToken: Date?
            try scheduler.add(id: 0, request: GenerationRequest(promptTokens: ids, maxTokens: decodeTokens + 1,
                                                                sampling: SamplingParameters(temperature: 0), stopTokens: []),
                              deliver: { event in
                                  if case .token = event, firstToken == nil { firstToken = Date() }
                              }, complete: {})
            while scheduler.hasWork { try scheduler.step() }
            let end = Date()
            guard let firstToken else { throw InvalidArgument("--decode-tokens", expected: "a run that produced tokens", got: "none") }
            bestPrefill = min(bestPrefill, firstToken.timeIntervalSince(start))
            bestDecode = min(bestDecode, end.timeIntervalSince(firstToken))
        }
        let prefill = Double(promptTokens) / bestPrefill, decode = Double(decodeTokens) / bestDecode
        let threadCount = threads ?? Parallel.defaultThreads
        if json {
            print("{\"model\": \"\((path as NSString).lastPathComponent)\", \"prompt_tokens\": \(promptTokens), "
                + "\"decode_tokens\": \(decodeTokens), \"threads\": \(threadCount), \"kv_cache_type\": \"\(cacheType.rawValue)\", "
                + "\"prefill_tokens_per_second\": \(String(format: "%.2f", prefill)), "
                + "\"decode_tokens_per_second\": \(String(format: "%.2f", decode)), \"isa\": \"\(Bench.isa)\"}")
        } else {
            print(Bench.isaLine)
            print("model      \((path as NSString).lastPathComponent), threads \(threadCount), KV cache \(cacheType.rawValue)")
            print(String(format: "prefill    %d tokens: %.1f tokens/s", promptTokens, prefill))
            print(String(format: "decode     %d tokens: %.1f tokens/s", decodeTokens, decode))
        }
    }

    /// Text repeated until it encodes to `count` tokens, cut to exactly `count`.
    static func promptIDs(tokenizer: GGUFTokenizer, count: Int) -> [Int] {
        let text = "The history of science is the study of the development of science and scientific knowledge, "
            + "including both the natural and social sciences. Science is a body of empirical, theoretical, "
            + "and practical knowledge about the natural world, produced by scientists who emphasize the "
            + "observation, explanation, and prediction of real-world phenomena. "
        var ids: [Int] = []
        while ids.count < count { ids += tokenizer.encode(text, parseSpecial: false) }
        return Array(ids.prefix(count))
    }
}
