import ArgumentParser
import Foundation
import FlashAttention
import FlashCore
import ModelFormats
import Serving
import ServingHTTP
import Transformer

/// `flash generate`: samples text from a trained checkpoint (`--checkpoint`) or a LLaMA-family
/// GGUF model (`--gguf`), streaming tokens to stdout as they are produced.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a checkpoint written by `flash train` or from a GGUF model.",
        discussion: """
            Give exactly one of --checkpoint DIR or --gguf FILE. Both run through the serving \
            engine's scheduler (the paged KV cache and forward pass `flash serve` runs, so a \
            greedy run here is token for token what the server answers): the prompt in one \
            pass, then one token per pass (or several with --speculative). --temperature 0 is \
            greedy. Generation stops at --max-tokens, an end-of-turn token (--gguf) or the \
            model's context length. Model facts, prefill/decode tokens/s and the speculative \
            acceptance rate go to stderr.
            With --checkpoint the prompt is echoed before the continuation; --no-cache instead \
            recomputes the whole context every token without the engine (the reference path; \
            greedy output is the same), and past the model's context it slides, using the last \
            `context` tokens; --attention picks its attention algorithm. Defaults: --max-tokens \
            200, all tokens kept.
            With --gguf the generated text alone goes to stdout; --chat wraps the prompt as a \
            user turn of the model's chat template. Defaults: --max-tokens 128, --top-k 40, \
            --top-p 0.95.
            """)

    @Option(help: "Checkpoint directory written by `flash train`.") var checkpoint: String?
    @Option(help: "LLaMA-family GGUF model file.") var gguf: String?
    @Option(help: "Text to continue (default with --checkpoint: a newline).") var prompt: String?
    @Flag(help: "Wrap the prompt as a user turn of the model's chat template (--gguf only).") var chat = false
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate (default 200 with --checkpoint, 128 with --gguf).") var maxTokens: Int?
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 0.8
    @Option(name: .customLong("top-k"), help: "Keep only the k most likely tokens (0 = all; default: all with --checkpoint, 40 with --gguf).") var topK: Int?
    @Option(name: .customLong("top-p"), help: "Nucleus sampling: keep the most likely tokens up to this total probability (default 1 with --checkpoint, 0.95 with --gguf).") var topP: Float?
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @Flag(name: .customLong("no-cache"), help: "Recompute the whole context for every token instead of using the KV cache (--checkpoint only; slides past the context).") var noCache = false
    @Option(help: "Attention algorithm of --no-cache: flash or standard.") var attention: AttentionImplementation?
    @OptionGroup var speculation: SpeculationOptions
    @OptionGroup var kvCache: KVCacheOptions
    @Option(help: "Threads (default: all cores).") var threads: Int?

    func validate() throws {
        if (checkpoint == nil) == (gguf == nil) {
            throw ValidationError("give exactly one of --checkpoint DIR or --gguf FILE")
        }
        if gguf != nil {
            if noCache { throw ValidationError("--no-cache needs --checkpoint (a GGUF model always uses its KV cache)") }
            if prompt == nil { throw ValidationError("--gguf needs --prompt TEXT") }
        } else if chat {
            throw ValidationError("--chat needs --gguf (a checkpoint has no chat template)")
        }
        if attention != nil && !noCache { throw ValidationError("--attention needs --no-cache (the engine's paged attention runs otherwise)") }
        if speculation.method != .none && noCache { throw ValidationError("--speculative needs the KV cache (drop --no-cache)") }
        if kvCache.kvCacheType != nil && noCache { throw ValidationError("--kv-cache-type needs the KV cache (drop --no-cache)") }
        if let maxTokens, maxTokens < 0 { throw ValidationError("--max-tokens must be ≥ 0, got \(maxTokens)") }
        if let topK, topK < 0 { throw ValidationError("--top-k must be ≥ 0 (0 = all), got \(topK)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
    }

    func run() throws {
        if let threads { Parallel.defaultThreads = threads }
        guard let checkpoint, noCache else {
            let source: ModelSource = gguf.map { .gguf($0) } ?? .checkpoint(checkpoint ?? "")
            let isGGUF = gguf != nil
            let k = self.topK ?? (isGGUF ? 40 : 0)
            try runEngineGeneration(EngineGenerationOptions(
                source: source, prompt: prompt ?? "\n", chat: chat, echoPrompt: !isGGUF,
                maxTokens: maxTokens ?? (isGGUF ? 128 : 200),
                sampling: SamplingParameters(temperature: temperature, topP: topP ?? (isGGUF ? 0.95 : 1),
                                             topK: k == 0 ? nil : k, seed: seed),
                threads: threads, speculation: speculation.method, draftTokens: speculation.draftTokens,
                draft: speculation.draft, kvCacheType: kvCache.elementType))
            return
        }
        let model = try Checkpoint.loadModel(from: checkpoint)
        model.attentionImplementation = attention ?? .flash
        model.threads = threads
        let tokenizer = try JSONDecoder().decode(AnyTokenizer.self, from: Checkpoint.loadTokenizerJSON(from: checkpoint))
        var sampler = try Sampler(temperature: temperature, topK: topK == 0 ? nil : topK, topP: topP ?? 1, seed: seed)
        try Self.stream(model: model, tokenizer: tokenizer, prompt: prompt ?? "\n", maxTokens: maxTokens ?? 200,
                        useCache: false, sampler: &sampler)
    }

    /// Generates and prints text as it is produced (holding back an incomplete UTF-8 sequence).
    static func stream(model: TransformerModel, tokenizer: AnyTokenizer, prompt: String, maxTokens: Int,
                       useCache: Bool, sampler: inout Sampler) throws {
        let ids = tokenizer.encode(prompt)
        if ids.isEmpty { throw CommandFailure("--prompt must contain at least one character") }
        var generated: [Int] = []
        var printed = 0
        FileHandle.standardOutput.write(Data(prompt.utf8))
        try Generator(model: model, useCache: useCache).generate(
            prompt: ids, maxTokens: maxTokens,
            choose: { logits in sampler.sample(logits: logits.baseAddress!, count: logits.count) },
            emit: { token in
                generated.append(token)
                let text = tokenizer.decode(generated)
                // A byte-level token may end inside a character: wait for the rest.
                if text.hasSuffix("\u{FFFD}") { return true }
                let scalars = Array(text.unicodeScalars)
                if scalars.count > printed {
                    var piece = String.UnicodeScalarView()
                    piece.append(contentsOf: scalars[printed...])
                    FileHandle.standardOutput.write(Data(String(piece).utf8))
                    printed = scalars.count
                }
                return true
            })
        let scalars = Array(tokenizer.decode(generated).unicodeScalars)
        if scalars.count > printed {
            var piece = String.UnicodeScalarView()
            piece.append(contentsOf: scalars[printed...])
            FileHandle.standardOutput.write(Data(String(piece).utf8))
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}
