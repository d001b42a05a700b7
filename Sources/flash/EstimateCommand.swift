import ArgumentParser
import Estimates
import FlashAttention
import FlashCore
import ModelFormats
import Transformer

struct EstimateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "estimate",
        abstract: "Parameters, training FLOPs, memory and time of a model configuration.",
        discussion: """
            Start from --preset (\(ModelPreset.all.map(\.name).joined(separator: ", "))) and override any \
            field with a flag, or give the model in full (--layers, --heads, --width, --context, --vocab and \
            the architecture flags). The presets of `flash train` (\(Self.trainingPresetNames)) estimate \
            what that command trains: its model (vocabulary: the built-in corpus's characters, as \
            `flash train` without --data), its batch, Float32 and AdamW, this project's trainer's \
            buffers (--memory-model trainer) on this CPU (--hardware cpu); any flag still overrides. \
            Formulas and conventions: docs/estimates.md.
            """)

    @OptionGroup var model: ModelOptions

    // Training.
    @Option(help: "Micro-batch: sequences per device per step (default 1; a flash train preset's batch).") var batch: Int?
    @Option(help: "Sequence length; default: the context.") var seq: Int?
    @Option(help: "Tokens the run trains on (e.g. 300e9).") var tokens: Double = 0
    @Option(help: "Weight precision: fp32, bf16, fp16 (default bf16; fp32 with a flash train preset).") var paramPrecision: String?
    @Option(help: "Gradient precision; default: the weight precision.") var gradPrecision: String?
    @Option(help: "Optimizer state (and master weight) precision.") var optimizerPrecision = "fp32"
    @Option(help: "Stored activation precision; default: the weight precision.") var activationPrecision: String?
    @Option(help: "Optimizer: sgd, sgd-momentum, adam, adamw.") var optimizer = "adamw"
    @Option(help: "Attention implementation: standard, flash.") var attention = "flash"
    @Option(help: "Activation recomputation: none, selective, full.") var recompute = "none"
    @Option(help: "Data-parallel degree.") var dp = 1
    @Option(help: "ZeRO stage: 0, or 1 (optimizer states sharded over the --dp ranks, as `flash train --zero 1`).") var zero = 0
    @Option(name: .customLong("context-parallel"), help: "Ranks per sequence (ring attention) for the communication estimate.") var contextParallel = 1
    @Option(name: .customLong("link-gbps"), help: "Link bandwidth per rank in Gbit/s: adds the communication per step of data parallelism, ZeRO-1 and ring attention.") var linkGbps: Double?
    @Option(help: "Tensor-parallel degree.") var tp = 1
    @Option(help: "Pipeline-parallel degree.") var pp = 1
    @Option(help: "Whose buffers the memory counts: textbook (the minimum a backward pass needs) or trainer (this project's trainer, byte for byte; Float32 AdamW only). Default: trainer with a flash train preset, else textbook.")
    var memoryModel: String?

    // Hardware.
    @Option(help: "Device for peak FLOP/s and memory: \(Hardware.all.map(\.name).joined(separator: ", ")) (default a100; cpu with a flash train preset).")
    var hardware: String?
    @Option(help: "Peak FLOP/s per device in TFLOP/s; default: the device's matmul peak.") var peakTflops: Double?
    @Option(help: "Model FLOPs utilisation the run achieves, in (0, 1].") var mfu = 0.4
    @Option(help: "Memory per device in GiB for the micro-batch search; default: the device's.") var memoryGib: Double?

    @Flag(help: "Print JSON instead of tables.") var json = false

    func run() throws {
        do {
            let estimate = try makeEstimate()
            let name = trainingPreset?.rawValue
            let communication = try linkGbps.map { gbps -> CommunicationEstimate in
                guard gbps > 0, gbps.isFinite else { throw InvalidArgument("--link-gbps", expected: "a positive bandwidth", got: "\(gbps)") }
                guard contextParallel >= 1 else { throw InvalidArgument("--context-parallel", expected: "≥ 1", got: "\(contextParallel)") }
                let s = estimate.setup
                return CommunicationEstimate(config: s.model, ranks: s.parallelism.data * contextParallel, contextParallel: contextParallel,
                                             microBatch: s.microBatch, sequenceLength: s.sequenceLength, bandwidth: gbps * 1e9 / 8)
            }
            if json {
                var object = try EstimateReport.json(estimate, preset: selectedPreset(), presetName: name)
                if let c = communication {
                    object["communication"] = ["gradient_bytes_per_rank": c.gradientBytes, "ring_attention_bytes_per_rank": c.ringBytes,
                                               "seconds_per_step": c.seconds, "link_gbps": linkGbps!, "context_parallel": contextParallel]
                }
                try EstimateFormat.printJSON(object)
            } else {
                try EstimateReport.printTables(estimate, preset: selectedPreset(), presetName: name)
                if let c = communication {
                    print(String(format: "\nCommunication per step and rank at %.3g Gbit/s (%d data-parallel × %d context-parallel ranks):",
                                 linkGbps!, estimate.setup.parallelism.data, contextParallel))
                    print("gradients (all-reduce, or ZeRO-1 reduce-scatter + all-gather)  " + EstimateFormat.gibibytes(c.gradientBytes))
                    print("ring attention (K/V forward, K/V/dK/dV backward)               " + EstimateFormat.gibibytes(c.ringBytes))
                    print(String(format: "time if not overlapped                                        %.4g s", c.seconds))
                }
            }
        } catch let error as InvalidArgument {
            throw Self.naming(error)
        }
    }

    static var trainingPresetNames: String { ModelOptions.trainingPresetNames }

    private var trainingPreset: TrainingPreset? { model.trainingPreset }

    private func selectedPreset() throws -> ModelPreset? { try model.selectedPreset() }

    private func makeEstimate() throws -> TrainingEstimate {
        let config = try model.config()

        let training = trainingPreset != nil
        let parameterPrecision = try EstimateFormat.choice(paramPrecision ?? (training ? "fp32" : "bf16"), "--param-precision",
                                                           as: NumericPrecision.self)
        var setup = TrainingSetup(
            model: config, microBatch: batch ?? trainingPreset?.shape.batch ?? 1, sequenceLength: seq ?? config.context, trainingTokens: tokens,
            parameterPrecision: parameterPrecision,
            gradientPrecision: try gradPrecision.map { try EstimateFormat.choice($0, "--grad-precision", as: NumericPrecision.self) },
            optimizerPrecision: try EstimateFormat.choice(optimizerPrecision, "--optimizer-precision", as: NumericPrecision.self),
            activationPrecision: try activationPrecision.map { try EstimateFormat.choice($0, "--activation-precision", as: NumericPrecision.self) },
            optimizer: try EstimateFormat.choice(optimizer, "--optimizer", as: Optimizer.self),
            attention: try EstimateFormat.choice(attention, "--attention", as: AttentionImplementation.self),
            recomputation: try EstimateFormat.choice(recompute, "--recompute", as: Recomputation.self),
            parallelism: Parallelism(data: dp, tensor: tp, pipeline: pp),
            memoryModel: try EstimateFormat.choice(memoryModel ?? (training ? "trainer" : "textbook"), "--memory-model", as: MemoryModel.self))
        setup.zeroStage = zero
        let hardware = self.hardware ?? (training ? "cpu" : "a100")
        guard let device = Hardware.named(hardware) else {
            throw InvalidArgument("--hardware", expected: "one of " + Hardware.all.map(\.name).joined(separator: ", "), got: hardware)
        }
        let peak = peakTflops.map { $0 * 1e12 } ?? device.matmulFLOPS
        let budget = memoryGib.map { $0 * 1_073_741_824 } ?? device.memoryBytes
        return try TrainingEstimate(setup, peakFLOPS: peak, utilisation: mfu, memoryBudget: budget)
    }

    /// The flag a library field comes from, so that errors name what the user typed.
    private static let flags: [String: String] = [
        "layers": "--layers", "heads": "--heads", "kvHeads": "--kv-heads", "width": "--width",
        "mlpWidth": "--mlp-width", "context": "--context", "vocabularySize": "--vocab",
        "width/heads": "--width/--heads", "dropout": "--dropout", "microBatch": "--batch",
        "sequenceLength": "--seq", "trainingTokens": "--tokens", "parallelism.data": "--dp", "zeroStage": "--zero",
        "parallelism.tensor": "--tp", "parallelism.pipeline": "--pp", "peakFLOPS": "--peak-tflops",
        "utilisation": "--mfu", "memoryBudget": "--memory-gib", "parameterPrecision": "--param-precision",
        "gradientPrecision": "--grad-precision", "optimizerPrecision": "--optimizer-precision",
        "activationPrecision": "--activation-precision", "optimizer": "--optimizer", "recomputation": "--recompute",
    ]

    static func naming(_ error: InvalidArgument) -> InvalidArgument {
        guard let flag = flags[error.argument] else { return error }
        return InvalidArgument("\(flag) (\(error.argument))", expected: error.expected, got: error.got)
    }
}
