import ArgumentParser
import Foundation
import FlashCore
import FlashAttention
import ModelFormats

/// `flash attention`: runs attention on tensors from a safetensors file and writes the results.
struct AttentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Compute attention on tensors from a safetensors file.",
        discussion: """
            Reads q [B, Nq, Hq, D], k and v [B, Nk, Hkv, D] (Hq a multiple of Hkv) and, optionally, \
            bias and mask ([Nq, Nk] or [B|1, Hq|1, Nq, Nk]; a mask keeps logits where it is nonzero), \
            alibi_slopes [Hq], key_lengths [B] and dout (shaped like q, needed by --backward); other tensors are ignored. \
            Writes o [B, Nq, Hq, D] and lse [B, Hq, Nq] (the log-sum-exp of each row's logits, −inf \
            where a row sees no key), plus dq, dk, dv with --backward; all Float32. The causal mask \
            and windows are aligned bottom-right: query i sits at key position i + Nk − Nq.
            """)

    @Option(name: .long, help: "Input safetensors file.")
    var input: String

    @Option(name: .long, help: "Output safetensors file (written atomically).")
    var output: String

    @Flag(name: .long, help: "Causal mask: query i sees keys j ≤ i + Nk − Nq.")
    var causal = false

    @Option(name: .long, help: "Sliding window LEFT,RIGHT: keys within LEFT before and RIGHT after the diagonal; -1 = unbounded.")
    var window: String?

    @Option(name: .long, help: "Soft-cap the logits: s ← CAP·tanh(s/CAP), after scaling.")
    var softcap: Float?

    @Option(name: .long, help: "Multiply QKᵀ by S (default 1/√headDim).")
    var scale: Float?

    @Option(name: .long, help: "Dropout probability on the attention weights (with --seed).")
    var dropout: Float = 0

    @Option(name: .long, help: "Seed of the dropout mask.")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Algorithm: flash or standard.")
    var impl: String = "flash"

    @Flag(name: .long, help: "Also compute dq, dk, dv from the tensor dout.")
    var backward = false

    @Option(name: .long, help: "Threads (default: all cores, or FLASH_THREADS).")
    var threads: Int?

    func run() throws {
        var options = AttentionJob.Options()
        options.causal = causal
        if let window { try options.setWindow(window) }
        options.softcap = softcap
        options.scale = scale
        options.dropoutProbability = dropout
        options.dropoutSeed = seed
        guard let implementation = AttentionImplementation(rawValue: impl) else {
            throw InvalidArgument("--impl", expected: "flash or standard", got: "'\(impl)'")
        }
        options.implementation = implementation
        options.backward = backward
        options.threads = threads
        let (tensors, _) = try Safetensors.read(path: input)
        let results = try AttentionJob.run(tensors: tensors, options: options)
        try Safetensors.write(results, metadata: ["producer": "flash attention", "impl": impl], to: output)
    }
}
