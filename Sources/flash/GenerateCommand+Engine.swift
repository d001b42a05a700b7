import Foundation
import FlashCore
import ModelFormats
import Serving
import ServingHTTP
import Transformer

/// Options of a generation run through the serving engine (`flash generate`, both model kinds).
struct EngineGenerationOptions {
    var source: ModelSource
    var prompt: String
    var chat: Bool
    /// Print the prompt before the continuation (a checkpoint's habit).
    var echoPrompt: Bool
    var maxTokens: Int
    var sampling: SamplingParameters
    var threads: Int?
    var speculation: SpeculationMethod
    var draftTokens: Int
    /// The draft model of `.draft` speculation and the flag it came from.
    var draft: (source: ModelSource, flag: String)?
    /// The KV cache's element type (nil: the model's default).
    var kvCacheType: ElementType?
}

/// Streams a model's continuation of a prompt: text alone to stdout as tokens come (the prompt
/// first with `echoPrompt`); model facts, prefill/decode speeds and the speculative acceptance
/// rate to stderr.
///
/// It runs the serving engine's scheduler with this one request: the same paged forward pass
/// and the same per-row arithmetic as `flash serve`, so a greedy run here is token for token
/// what the server answers, whatever else it is doing.
func runEngineGeneration(_ options: EngineGenerationOptions) throws {
    try InvalidArgument.require(options.maxTokens >= 0, "--max-tokens", expected: "≥ 0", got: "\(options.maxTokens)")
    if let threads = options.threads { try InvalidArgument.require(threads >= 1, "--threads", expected: "≥ 1", got: "\(threads)") }
    let s = options.sampling
    _ = try Sampler(temperature: s.temperature, topK: s.topK, topP: s.topP, seed: s.seed)  // validates the sampling options
    let (model, tokenizer) = try options.source.load(threads: options.threads)
    var draft: (any PagedLanguageModel)?
    if let d = options.draft {
        let loaded = try d.source.load(threads: options.threads).model
        try InvalidArgument.require(loaded.vocabularySize == model.vocabularySize, d.flag,
                                    expected: "a draft model with the target's vocabulary (\(model.vocabularySize) tokens)",
                                    got: "\(loaded.vocabularySize) tokens")
        draft = loaded
    }
    let text = options.chat ? try tokenizer.chatPrompt([ChatMessage(role: "user", content: options.prompt)]) : options.prompt
    let promptTokens = tokenizer.encode(text, special: options.chat)
    try InvalidArgument.require(!promptTokens.isEmpty, "--prompt", expected: "text that encodes to at least one token", got: "\"\(options.prompt)\"")
    let context = model.contextLength
    try InvalidArgument.require(promptTokens.count < context, "--prompt",
                                expected: "fewer than \(context) tokens (the context length)", got: "\(promptTokens.count) tokens")
    let stderr = FileHandle.standardError
    func note(_ s: String) { stderr.write(Data((s + "\n").utf8)) }
    var facts = "vocab \(model.vocabularySize), context \(context)"
    if let llama = model as? LlamaModel {
        let c = llama.configuration
        facts = "\(c.layers) layers, hidden \(c.hiddenSize), heads \(c.heads)/\(c.keyValueHeads) kv, " + facts
            + ", \(llama.tiedOutput ? "tied" : "separate") output"
    } else if let trained = model as? TransformerModel {
        let c = trained.config
        facts = "\(c.layers) layers, width \(c.width), heads \(c.heads)/\(c.kvHeads) kv, " + facts
    }
    let cacheType = options.kvCacheType ?? model.defaultKVCacheType
    note("flash: \(facts); prompt \(promptTokens.count) tokens; threads \(options.threads ?? Parallel.defaultThreads); KV cache \(cacheType.rawValue)"
        + (options.speculation == .none ? "" : "; speculative \(options.speculation.rawValue), \(options.draftTokens) tokens"))
    if promptTokens.count + options.maxTokens > context {
        note("flash: generation stops at the context length (\(context) tokens): at most \(context - promptTokens.count) new tokens")
    }
    if options.echoPrompt { FileHandle.standardOutput.write(Data(options.prompt.utf8)) }
    guard options.maxTokens > 0 else {
        FileHandle.standardOutput.write(Data("\n".utf8))
        return
    }
    let capacity = min(context, promptTokens.count + options.maxTokens)
    let scheduler = try Scheduler(model: model, draft: draft, configuration: ServingConfiguration(
        blockSize: 16, blockCount: ServingConfiguration.blocks(forTokens: capacity + options.draftTokens), maxRunning: 1,
        maxBatchTokens: promptTokens.count + options.draftTokens + 1, maxWaiting: 1, prefixCaching: false, threads: options.threads,
        speculation: options.speculation, speculativeTokens: options.draftTokens, kvCacheType: cacheType))
    // Bytes of an unfinished UTF-8 character wait for the rest before printing.
    var assembler = TextAssembler(stops: [])
    var generated = 0
    let prefillStart = Date()
    var decodeStart: Date?
    try scheduler.add(id: 0, request: GenerationRequest(promptTokens: promptTokens, maxTokens: options.maxTokens,
                                                        sampling: options.sampling, stopTokens: tokenizer.endOfGenerationTokens),
                      deliver: { event in
                          if decodeStart == nil { decodeStart = Date() }
                          guard case .token(let t) = event else { return }
                          generated += 1
                          FileHandle.standardOutput.write(Data(assembler.append(tokenizer.textBytes(of: t.token)).utf8))
                      }, complete: {})
    while scheduler.hasWork { try scheduler.step() }
    FileHandle.standardOutput.write(Data((assembler.flush() + "\n").utf8))
    let end = Date()
    let prefillSeconds = (decodeStart ?? end).timeIntervalSince(prefillStart)
    let decodeSeconds = end.timeIntervalSince(decodeStart ?? end)
    let decoded = max(generated - 1, 0)  // the first token came from the prefill's logits
    var line = String(format: "prefill: %d tokens in %.3f s (%.1f tokens/s); decode: %d tokens in %.3f s (%.1f tokens/s)",
                      promptTokens.count, prefillSeconds, Double(promptTokens.count) / max(prefillSeconds, 1e-9),
                      decoded, decodeSeconds, Double(decoded) / max(decodeSeconds, 1e-9))
    let stats = scheduler.statistics
    if options.speculation != .none {
        line += String(format: "; speculative: %d of %d proposed tokens accepted (%.0f%%), %d model passes",
                       stats.speculativeAccepted, stats.speculativeProposed,
                       100 * Double(stats.speculativeAccepted) / Double(max(stats.speculativeProposed, 1)), stats.steps)
    }
    note(line)
}
