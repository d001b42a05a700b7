import ArgumentParser
import Foundation
import FlashCore
import ModelFormats
import Serving
import Transformer

/// Options of a GGUF generation run (`flash generate --gguf`).
struct GGUFGenerationOptions {
    var path: String
    var prompt: String
    var chat: Bool
    var maxTokens: Int
    var temperature: Float
    var topK: Int
    var topP: Float
    var seed: UInt64
    var threads: Int?
}

/// Streams a GGUF model's continuation of a prompt: generated text alone to stdout, as tokens
/// come; model facts and prefill/decode speeds to stderr.
func runGGUFGeneration(_ options: GGUFGenerationOptions) throws {
    try InvalidArgument.require(options.maxTokens >= 0, "--max-tokens", expected: "≥ 0", got: "\(options.maxTokens)")
    if let threads = options.threads { try InvalidArgument.require(threads >= 1, "--threads", expected: "≥ 1", got: "\(threads)") }
    let file = try GGUFFile(path: options.path)
    let model = try LlamaModel(file: file, threads: options.threads)
    let tokenizer = try GGUFTokenizer(file: file)
    let c = model.configuration
    let text = options.chat ? try tokenizer.applyChatTemplate([ChatMessage(role: "user", content: options.prompt)]) : options.prompt
    let promptTokens = tokenizer.encode(text, parseSpecial: options.chat)
    try InvalidArgument.require(!promptTokens.isEmpty, "--prompt", expected: "text that encodes to at least one token", got: "\"\(options.prompt)\"")
    let capacity = min(c.contextLength, promptTokens.count + options.maxTokens)
    try InvalidArgument.require(promptTokens.count <= c.contextLength, "--prompt",
                                expected: "at most \(c.contextLength) tokens (the context length)", got: "\(promptTokens.count) tokens")
    _ = try Sampler(temperature: options.temperature, topK: options.topK == 0 ? nil : options.topK,
                    topP: options.topP, seed: options.seed)  // validates the sampling options
    let stderr = FileHandle.standardError
    func note(_ s: String) { stderr.write(Data((s + "\n").utf8)) }
    note("flash: \(c.layers) layers, hidden \(c.hiddenSize), heads \(c.heads)/\(c.keyValueHeads) kv, vocab \(c.vocabularySize), "
        + "\(model.tiedOutput ? "tied" : "separate") output; prompt \(promptTokens.count) tokens; threads \(options.threads ?? Parallel.defaultThreads)")

    // The serving engine's scheduler with this one request: the same paged forward pass and
    // the same per-row arithmetic as `flash serve`, so a greedy run here is token for token
    // what the server answers, whatever else it is doing.
    guard options.maxTokens > 0 else {
        FileHandle.standardOutput.write(Data("\n".utf8))
        return
    }
    let scheduler = try Scheduler(model: model, configuration: ServingConfiguration(
        blockSize: 16, blockCount: ServingConfiguration.blocks(forTokens: max(capacity, 1)), maxRunning: 1,
        maxBatchTokens: promptTokens.count, maxWaiting: 1, prefixCaching: false, threads: options.threads))
    // Bytes of an unfinished UTF-8 character wait for the rest before printing.
    var pending: [UInt8] = []
    var generated = 0
    let prefillStart = Date()
    var decodeStart: Date?
    try scheduler.add(id: 0, request: GenerationRequest(
        promptTokens: promptTokens, maxTokens: options.maxTokens,
        sampling: SamplingParameters(temperature: options.temperature, topP: options.topP,
                                     topK: options.topK == 0 ? nil : options.topK, seed: options.seed),
        stopTokens: Set(tokenizer.endOfGenerationTokens)),
        deliver: { event in
            if decodeStart == nil { decodeStart = Date() }
            guard case .token(let t) = event else { return }
            generated += 1
            pending += tokenizer.bytes(of: t.token, skipSpecial: true)
            let complete = completeUTF8Prefix(pending)
            if complete > 0 {
                FileHandle.standardOutput.write(Data(pending[..<complete]))
                pending.removeFirst(complete)
            }
        }, complete: {})
    while scheduler.hasWork { try scheduler.step() }
    if !pending.isEmpty { FileHandle.standardOutput.write(Data(String(decoding: pending, as: UTF8.self).utf8)) }
    FileHandle.standardOutput.write(Data("\n".utf8))
    let end = Date()
    let prefillSeconds = (decodeStart ?? end).timeIntervalSince(prefillStart)
    let decodeSeconds = end.timeIntervalSince(decodeStart ?? end)
    let decoded = max(generated - 1, 0)  // the first token came from the prefill's logits
    note(String(format: "prefill: %d tokens in %.3f s (%.1f tokens/s); decode: %d tokens in %.3f s (%.1f tokens/s)",
                promptTokens.count, prefillSeconds, Double(promptTokens.count) / max(prefillSeconds, 1e-9),
                decoded, decodeSeconds, Double(decoded) / max(decodeSeconds, 1e-9)))
}

/// Length of the longest prefix of `bytes` that ends on a UTF-8 character boundary.
func completeUTF8Prefix(_ bytes: [UInt8]) -> Int {
    var i = bytes.count
    // Walk back over at most 3 continuation bytes to the last lead byte.
    var back = 0
    while i > 0 && back < 4 && bytes[i - 1] & 0xC0 == 0x80 { i -= 1; back += 1 }
    guard i > 0 else { return bytes.count }
    let lead = bytes[i - 1]
    let needed = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
    return back + 1 >= needed ? bytes.count : i - 1
}
