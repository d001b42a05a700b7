import ArgumentParser
import Distributed
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

            Under mpirun (one --preset and --attention): data-parallel training with --batch \
            sequences per rank (--zero, --context-parallel as in flash train); rank 0 prints the \
            job's tokens/s, the seconds per step the communication thread spent in collectives, and \
            the share of the step the compute thread waited for them (what overlap did not hide).
            """)

    @Option(help: "Preset: small or nanogpt (default: both).") var preset: TrainingPreset?
    @Option(help: "Attention: flash or standard (default: both).") var attention: AttentionImplementation?
    @Option(help: "Timed optimizer steps.") var steps = 10
    @Option(help: "Untimed steps first.") var warmup = 2
    @Option(help: "Vocabulary size (random tokens).") var vocab = 2048
    @Option(help: "Sequences per step (default: the preset's, 8).") var batch: Int?
    @Option(help: "Tokens per sequence (default: the preset's).") var context: Int?
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Print JSON (one object for one pair, else a list).") var json = false
    @Option(help: "ZeRO stage under mpirun (0 or 1).") var zero = 0
    @Option(name: .customLong("context-parallel"), help: "Ranks per sequence under mpirun.") var contextParallel = 1

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
        var world_size: Int = 1
        var zero: Int = 0
        var context_parallel: Int = 1
        /// Seconds per step the communication thread spent in collectives.
        var communication_seconds_per_step: Double = 0
        /// Share of the step the compute thread waited for communication.
        var communication_wait_share: Double = 0
    }

    func validate() throws {
        if steps < 1 || steps > 10_000 { throw ValidationError("--steps must be in 1...10000, got \(steps)") }
        if warmup < 0 { throw ValidationError("--warmup must be ≥ 0, got \(warmup)") }
        if vocab < 2 || vocab > 1 << 20 { throw ValidationError("--vocab must be in 2...1048576, got \(vocab)") }
        if let batch, batch < 1 { throw ValidationError("--batch must be ≥ 1, got \(batch)") }
        if let context, context < 2 || context > 1 << 20 { throw ValidationError("--context must be in 2...1048576, got \(context)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
    }

    func run() throws {
        let communicator = try MPICommunicator.worldIfLaunched()
        defer { communicator?.finalize() }
        if communicator != nil && (preset == nil || attention == nil) {
            throw CommandFailure("under mpirun, give one --preset and one --attention (each pair would otherwise start child processes)")
        }
        if let preset, let attention {
            let result = try measure(preset: preset, attention: attention, communicator: communicator)
            if communicator?.rank ?? 0 != 0 { return }
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
        if let context { arguments += ["--context", "\(context)"] }
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

    func measure(preset: TrainingPreset, attention: AttentionImplementation, communicator: Communicator? = nil) throws -> Result {
        if let threads { Parallel.defaultThreads = threads }
        let shape = preset.shape
        let batch = self.batch ?? shape.batch, context = self.context ?? shape.context
        let config = TransformerConfig(layers: shape.layers, heads: shape.heads, width: shape.width, context: context,
                                       vocabularySize: vocab)
        let model = try TransformerModel(config: config, seed: 0)
        model.attentionImplementation = attention
        model.threads = threads
        var random = TrainerRandom(seed: 1)
        let tokens = (0..<max(100_000, 4 * batch * context)).map { _ in random.nextInt(below: vocab) }
        let data = try TokenDataset(tokens: tokens, validationFraction: 0, context: context)
        let distributed = (communicator?.size ?? 1) > 1 ? communicator : nil
        let trainer = try Trainer(model: model, data: data, options: TrainingOptions(
            steps: warmup + steps, batch: batch, learningRate: 3e-4, warmup: 0, seed: 1),
            communicator: distributed, zeroStage: zero, contextParallel: contextParallel)
        for _ in 0..<warmup { try trainer.trainStep() }
        _ = (trainer.takeCommunicationWait(), trainer.takeCommunicationTime())
        try distributed?.barrier()
        let start = Date()
        var loss: Float = 0
        for _ in 0..<steps { loss = try trainer.trainStep().loss }
        let elapsed = Date().timeIntervalSince(start)
        let waited = trainer.takeCommunicationWait(), busy = trainer.takeCommunicationTime()
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Result(preset: preset.rawValue, attention: attention.rawValue, batch: batch, context: context,
                      threads: threads ?? Parallel.defaultThreads, layers: shape.layers, heads: shape.heads, width: shape.width,
                      vocab: vocab, params: model.parameterCount, steps: steps,
                      tokens_per_second: Double(steps * trainer.tokensPerStep) / elapsed, ms_per_step: 1000 * elapsed / Double(steps),
                      peak_bytes: usage.ru_maxrss * 1024, tracked_bytes: model.allocatedBytes + trainer.optimizer.allocatedBytes,
                      loss: Double(loss), world_size: trainer.worldSize, zero: zero, context_parallel: contextParallel,
                      communication_seconds_per_step: busy / Double(steps), communication_wait_share: waited / elapsed)
    }
}
