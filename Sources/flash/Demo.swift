import ArgumentParser
import Foundation
import FlashCore
import ModelFormats
import Transformer

/// `flash demo`: the main job end to end on a fresh machine — trains a small character-level
/// transformer on the built-in corpus for about a minute (flash attention forward and
/// backward in every step), shows the loss falling, then samples text from it.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a small transformer on the built-in corpus for about a minute, then sample text.")

    @Option(help: "Training time budget in seconds.") var seconds: Double = 60
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Option(help: "Also write the trained model as a checkpoint to this directory.") var out: String?
    @Option(help: "Random seed.") var seed: UInt64 = 1337

    func validate() throws {
        if !(seconds > 0 && seconds <= 86_400) { throw ValidationError("--seconds must be in (0, 86400], got \(seconds)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
    }

    func run() throws {
        if let threads { Parallel.defaultThreads = threads }
        let text = try BuiltinCorpus.text()
        let tokenizer = AnyTokenizer.character(CharTokenizer(corpus: text))
        let config = TransformerConfig(layers: 2, heads: 4, width: 64, context: 64, vocabularySize: tokenizer.vocabularySize)
        let model = try TransformerModel(config: config, seed: seed)
        model.threads = threads
        let data = try TokenDataset(tokens: tokenizer.encode(text), validationFraction: 0.1, context: config.context)
        func options(steps: Int) -> TrainingOptions {
            TrainingOptions(steps: steps, batch: 16, learningRate: 4e-3, warmup: min(20, steps / 5), seed: seed, evaluationBatches: 4)
        }
        // Size the run to the time budget: time a few steps of a throwaway copy first.
        let probe = try Trainer(model: TransformerModel(config: config, seed: seed), data: data, options: options(steps: 3))
        let probeStart = Date()
        for _ in 0..<2 { try probe.trainStep() }  // first steps allocate and warm caches: untimed
        let clock = Date()
        for _ in 0..<3 { try probe.trainStep() }
        let perStep = Date().timeIntervalSince(clock) / 3
        let steps = max(10, Int((seconds - Date().timeIntervalSince(probeStart)) / (perStep * 1.1)))
        let trainer = try Trainer(model: model, data: data, options: options(steps: steps))
        print("""
            flash demo: a \(config.layers)-layer, \(config.heads)-head, \(config.width)-wide character-level transformer \
            (\(model.parameterCount) parameters, context \(config.context)) learns the built-in corpus \
            (\(text.count) characters, vocabulary \(config.vocabularySize)) for \(steps) steps (about \(Int(seconds)) s) on \
            \(threads ?? Parallel.defaultThreads) thread(s), with FlashAttention forward and backward in every step.
            """)
        fflush(stdout)
        let session = TrainingSession(trainer: trainer, tokenizer: tokenizer, evalEvery: max(1, steps / 5),
                                      checkpointDirectory: out, dataPath: nil, logPath: nil, timeLimit: seconds * 1.5)
        let summary = try session.run()
        if let out { try session.saveCheckpoint(); print("checkpoint: \(out)") }
        print(String(format: "training loss %.3f → %.3f over %d steps (%.0f tokens/s)", summary.firstLoss ?? .nan,
                     summary.lastLoss ?? .nan, trainer.step, summary.tokensPerSecond))
        if let first = summary.firstValidation, let last = summary.lastValidation {
            print(String(format: "validation loss %.3f → %.3f (uniform guessing: %.3f)", first, last, Foundation.log(Double(config.vocabularySize))))
        }
        print("\nsample (temperature 0.8):\n")
        fflush(stdout)
        var sampler = try Sampler(temperature: 0.8, topK: nil, topP: 0.95, seed: seed)
        try GenerateCommand.stream(model: model, tokenizer: tokenizer, prompt: "Attention ", maxTokens: 400, useCache: true, sampler: &sampler)
    }
}
