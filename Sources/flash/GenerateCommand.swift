import ArgumentParser
import Foundation
import FlashAttention
import FlashCore
import ModelFormats
import Transformer

/// `flash generate`: samples text from a checkpoint, streaming tokens to stdout as produced.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a checkpoint written by `flash train`.",
        discussion: """
            The prompt is processed in one pass, then one token per pass against a KV cache \
            (--no-cache recomputes the whole context every token; greedy output is the same). \
            --temperature 0 is greedy. Past the model's context the last `context` tokens are used.
            """)

    @Option(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Text to continue.") var prompt: String = "\n"
    @Option(name: .customLong("max-tokens"), help: "Tokens to generate.") var maxTokens = 200
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 0.8
    @Option(name: .customLong("top-k"), help: "Keep only the k most likely tokens.") var topK: Int?
    @Option(name: .customLong("top-p"), help: "Nucleus sampling: keep the most likely tokens up to this total probability.") var topP: Float = 1
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @Flag(name: .customLong("no-cache"), help: "Recompute the whole context for every token instead of using the KV cache.") var noCache = false
    @Option(help: "Attention algorithm: flash or standard.") var attention: AttentionImplementation = .flash
    @Option(help: "Threads (default: all cores).") var threads: Int?

    func validate() throws {
        if maxTokens < 0 { throw ValidationError("--max-tokens must be ≥ 0, got \(maxTokens)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
    }

    func run() throws {
        if let threads { Parallel.defaultThreads = threads }
        let model = try Checkpoint.loadModel(from: checkpoint)
        model.attentionImplementation = attention
        model.threads = threads
        let tokenizer = try JSONDecoder().decode(AnyTokenizer.self, from: Checkpoint.loadTokenizerJSON(from: checkpoint))
        var sampler = try Sampler(temperature: temperature, topK: topK, topP: topP, seed: seed)
        try Self.stream(model: model, tokenizer: tokenizer, prompt: prompt, maxTokens: maxTokens, useCache: !noCache, sampler: &sampler)
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
