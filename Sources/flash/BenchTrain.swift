import ArgumentParser
import FlashAttention
import FlashCore
import Foundation
import Transformer

/// `flash bench train`: training throughput (tokens/s) and peak memory of the GPT-2-style
/// presets with flash and with standard attention. scripts/bench_train.py trains the same
/// architecture in PyTorch and prints the ratios.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training tokens/s and peak memory for the small and nanoGPT presets, flash vs standard attention.",
        discussion: """
            Architecture as scripts/bench_train.py: learned positions, pre-LayerNorm, GELU, biases, \
            tied embeddings, fused QKV, AdamW, batch 8, random tokens. Each (preset, attention) pair \
            runs in its own process so that peak_bytes (getrusage ru_maxrss) is that pair's own; \
            tracked_bytes counts what the model and optimizer allocate (parameters, gradients, \
            AdamW moments, activations).
            """)

    @Option(help: "Preset: small or nanogpt (default: both).") var preset: TrainingPreset?
    @Option(help: "Attention: flash or standard (default: both).") var attention: AttentionImplementation?
    @Option(help: "Timed optimizer steps.") var steps = 10
    @Option(help: "Untimed steps first.") var warmup = 2
    @Option(help: "Vocabulary size (random tokens).") var vocab = 2048
    @Option(help: "Sequences per step (default: the preset's, 8).") var batch: Int?
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Print JSON (one object for one pair, else a list).") var json = false

    struct Result: Codable {
        var preset: String
        var attention: String
        var batch, context, threads, layers, heads, width, vocab, params, steps: Int
        var tokens_per_second: Double
        var ms_per_step: Double
        var peak_bytes: Int
        var tracked_bytes: Int
        var loss: Double
        var isa = Bench.isa
    }

    func validate() throws {
        if steps < 1 || steps > 10_000 { throw ValidationError("--steps must be in 1...10000, got \(steps)") }
        if warmup < 0 { throw ValidationError("--warmup must be ≥ 0, got \(warmup)") }
        if vocab < 2 || vocab > 1 << 20 { throw ValidationError("--vocab must be in 2...1048576, got \(vocab)") }
        if let batch, batch < 1 { throw ValidationError("--batch must be ≥ 1, got \(batch)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
    }

    func run() throws {
        if let preset, let attention {
            let result = try measure(preset: preset, attention: attention)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(result), as: UTF8.self))
            } else {
                printTable([result])
            }
            return
        }
        var results: [Result] = []
        for p in preset.map({ [$0] }) ?? [.small, .nanogpt] {
            for a in attention.map({ [$0] }) ?? [.flash, .standard] {
                if !json { TrainingSession.standardError("[\(p.rawValue), \(a.rawValue)] ...\n") }
                results.append(try runChild(preset: p, attention: a))
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try encoder.encode(results), as: UTF8.self))
        } else {
            printTable(results)
        }
    }

    func printTable(_ results: [Result]) {
        print(Bench.isaLine)
        print("preset   attention  batch context threads   params   tokens/s  ms/step  peak MiB  tracked MiB")
        for r in results {
            print(r.preset.padding(toLength: 8, withPad: " ", startingAt: 0), r.attention.padding(toLength: 9, withPad: " ", startingAt: 0),
                  String(format: "%6d %7d %7d %8d %10.0f %8.1f %9.0f %12.0f", r.batch, r.context, r.threads, r.params,
                         r.tokens_per_second, r.ms_per_step, Double(r.peak_bytes) / 1_048_576, Double(r.tracked_bytes) / 1_048_576))
        }
    }

    /// Runs one pair in a child process (this executable, same flags, that pair only).
    func runChild(preset: TrainingPreset, attention: AttentionImplementation) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var arguments = ["bench", "train", "--json", "--preset", preset.rawValue, "--attention", attention.rawValue,
                         "--steps", "\(steps)", "--warmup", "\(warmup)", "--vocab", "\(vocab)"]
        if let batch { arguments += ["--batch", "\(batch)"] }
        if let threads { arguments += ["--threads", "\(threads)"] }
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CommandFailure("bench train for \(preset.rawValue)/\(attention.rawValue) failed (status \(process.terminationStatus))")
        }
        return try JSONDecoder().decode(Result.self, from: output)
    }

    func measure(preset: TrainingPreset, attention: AttentionImplementation) throws -> Result {
        if let threads { Parallel.defaultThreads = threads }
        let shape = preset.shape
        let batch = self.batch ?? shape.batch
        let config = TransformerConfig(layers: shape.layers, heads: shape.heads, width: shape.width, context: shape.context,
                                       vocabularySize: vocab)
        let model = try TransformerModel(config: config, seed: 0)
        model.attentionImplementation = attention
        model.threads = threads
        var random = TrainerRandom(seed: 1)
        let tokens = (0..<max(100_000, 4 * batch * shape.context)).map { _ in random.nextInt(below: vocab) }
        let data = try TokenDataset(tokens: tokens, validationFraction: 0, context: shape.context)
        let trainer = try Trainer(model: model, data: data, options: TrainingOptions(
            steps: warmup + steps, batch: batch, learningRate: 3e-4, warmup: 0, seed: 1))
        for _ in 0..<warmup { try trainer.trainStep() }
        let start = Date()
        var loss: Float = 0
        for _ in 0..<steps { loss = try trainer.trainStep().loss }
        let elapsed = Date().timeIntervalSince(start)
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Result(preset: preset.rawValue, attention: attention.rawValue, batch: batch, context: shape.context,
                      threads: threads ?? Parallel.defaultThreads, layers: shape.layers, heads: shape.heads, width: shape.width,
                      vocab: vocab, params: model.parameterCount, steps: steps,
                      tokens_per_second: Double(steps * batch * shape.context) / elapsed, ms_per_step: 1000 * elapsed / Double(steps),
                      peak_bytes: usage.ru_maxrss * 1024, tracked_bytes: model.allocatedBytes + trainer.optimizer.allocatedBytes,
                      loss: Double(loss))
    }
}
