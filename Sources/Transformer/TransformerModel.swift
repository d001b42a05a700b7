import Foundation
import FlashCore
import FlashAttention

/// A decoder-only transformer language model: all parameters in one contiguous Float32
/// buffer (`parameters`, laid out by `ParameterLayout`) and their gradients in another
/// (`gradients`), so the optimizer and checkpoints work on flat memory.
///
/// Training step: `zeroGradients()`, then per micro-batch `forward(..., mode: .training(...))`
/// followed by `backward()`, which accumulates into `gradients`.
public final class TransformerModel {
    /// What a forward pass is for.
    public enum Mode: Sendable {
        /// Logits only (generation).
        case inference
        /// Loss with targets, no dropout, no gradient.
        case evaluation
        /// Loss, dropout on, and the loss gradient written for `backward()`:
        /// ∂(lossScale · Σ_rows loss)/∂logits. Use 1/(rows · micro-batches) for a mean.
        case training(lossScale: Float, dropoutSeed: UInt64)
    }

    /// The architecture.
    public let config: TransformerConfig
    /// Where each parameter tensor lives in `parameters`.
    public let layout: ParameterLayout
    /// All parameters, `parameterCount` Float32 values.
    public let parameters: UnsafeMutablePointer<Float>
    /// Gradients, same layout as `parameters`.
    public let gradients: UnsafeMutablePointer<Float>
    /// The attention algorithm (flash by default; standard for comparison).
    public var attentionImplementation: AttentionImplementation = .flash
    /// Threads for every kernel; nil means `Parallel.defaultThreads`.
    public var threads: Int?
    /// When set, each sequence is split over a ring of ranks: the model sees this rank's shard
    /// (positions from `contextParallel.positions`) and attention runs as ring attention.
    public var contextParallel: ContextParallelism?
    /// The index in the global batch of this rank's first sequence (data parallel: r·B). Dropout
    /// masks are functions of global coordinates (element, sequence), so every rank draws the
    /// masks one process with the whole global batch would draw for these sequences.
    public var dropoutSequenceOffset = 0

    let rotary: RotaryTable?
    let alibiSlopes: [Float]?
    var buffers: ActivationBuffers?
    /// The last forward pass's shape and mode, which `backward()` differentiates.
    var lastPass: (batch: Int, time: Int, mode: Mode)?

    /// Number of parameters (shared embeddings counted once).
    public var parameterCount: Int { layout.count }

    /// Bytes of parameters, gradients and activation buffers currently allocated.
    public var allocatedBytes: Int { 2 * 4 * layout.count + (buffers?.bytes ?? 0) }

    /// A model with GPT-2-style initial weights: N(0, 0.02) for embeddings and matrices,
    /// N(0, 0.02/√(2·layers)) for the two projections that feed the residual stream, zero
    /// biases, unit norm weights. The same seed gives the same weights.
    public init(config: TransformerConfig, seed: UInt64 = 0) throws {
        try config.validate()
        self.config = config
        layout = ParameterLayout(config)
        parameters = .allocate(capacity: max(layout.count, 1))
        // calloc: zeroed pages come from the OS untouched, so a model that is only inspected
        // (e.g. counted) never pays for writing its gradient buffer.
        guard let zeroed = calloc(max(layout.count, 1), MemoryLayout<Float>.stride) else {
            throw InvalidArgument("config", expected: "a model that fits in memory", got: "\(layout.count) parameters")
        }
        gradients = zeroed.assumingMemoryBound(to: Float.self)
        rotary = config.positionEncoding == .rotary
            ? RotaryTable(headDim: config.headDim, positions: config.context, theta: config.ropeTheta, scaling: config.ropeScaling)
            : nil
        alibiSlopes = config.positionEncoding == .alibi ? ALiBi.slopes(heads: config.heads) : nil
        initializeParameters(seed: seed)
    }

    deinit {
        parameters.deallocate()
        free(gradients)
    }

    /// Overwrites every parameter with fresh initial values drawn from `seed`. Each block of
    /// 64 Ki values of a tensor draws from its own generator (seeded by seed, tensor and
    /// block), so blocks fill in parallel and the result never depends on the thread count.
    public func initializeParameters(seed: UInt64) {
        let residualStd = 0.02 / (2 * Double(config.layers)).squareRoot()
        let block = 1 << 16
        var jobs: [(offset: Int, count: Int, std: Double, seed: UInt64)] = []
        for (index, entry) in layout.entries.enumerated() {
            let p = parameters + entry.offset
            switch entry.kind {
            case .norm: p.update(repeating: 1, count: entry.count)
            case .bias: p.update(repeating: 0, count: entry.count)
            case .embedding, .matrix:
                let std = entry.name.hasSuffix("proj.weight") || entry.name.hasSuffix("down.weight") ? residualStd : 0.02
                for start in stride(from: 0, to: entry.count, by: block) {
                    jobs.append((entry.offset + start, min(block, entry.count - start), std,
                                 Dropout.mix(seed ^ Dropout.mix(UInt64(index) << 32 | UInt64(start / block)))))
                }
            }
        }
        let p = parameters
        Parallel.forEach(jobs.count, threads: threads) { j in
            let job = jobs[j]
            var random = TrainerRandom(seed: job.seed)
            var i = 0
            while i < job.count {
                // Box–Muller gives two independent normals per pair of uniforms.
                let radius = (-2 * Foundation.log(max(random.nextUniform(), 0x1p-60))).squareRoot() * job.std
                let angle = 2 * Double.pi * random.nextUniform()
                p[job.offset + i] = Float(radius * Foundation.cos(angle))
                if i + 1 < job.count { p[job.offset + i + 1] = Float(radius * Foundation.sin(angle)) }
                i += 2
            }
        }
    }

    /// The parameter tensor called `name` (see `ParameterLayout`), as a buffer into `parameters`.
    public func parameter(named name: String) -> UnsafeMutableBufferPointer<Float>? {
        guard let entry = layout.entries.first(where: { $0.name == name }) else { return nil }
        return UnsafeMutableBufferPointer(start: parameters + entry.offset, count: entry.count)
    }

    /// The gradient of the parameter called `name`.
    public func gradient(named name: String) -> UnsafeMutableBufferPointer<Float>? {
        guard let entry = layout.entries.first(where: { $0.name == name }) else { return nil }
        return UnsafeMutableBufferPointer(start: gradients + entry.offset, count: entry.count)
    }

    /// Sets every gradient to zero (before the first micro-batch of a step).
    public func zeroGradients() {
        gradients.update(repeating: 0, count: layout.count)
    }

    /// The logits of row `row` (= b·time + t) of the last forward pass. Valid after an
    /// inference or evaluation pass (a training pass overwrites them with their gradient).
    public func logits(row: Int) -> UnsafeBufferPointer<Float> {
        precondition(buffers != nil && row >= 0 && row < (lastPass.map { $0.batch * $0.time } ?? 0), "logits(row:) needs a forward pass covering that row")
        return UnsafeBufferPointer(start: buffers!.logits.floats + row * config.vocabularySize, count: config.vocabularySize)
    }

    /// Makes sure activation buffers cover `rows` rows (and gradient scratch if needed).
    /// Throws instead of allocating more than the machine's physical memory.
    func ensureBuffers(rows: Int, gradients needsGradients: Bool) throws {
        if let b = buffers, b.rows >= rows, b.hasGradients || !needsGradients { return }
        let bytes = Self.activationBytes(config: config, rows: rows, training: needsGradients)
        let available = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        try InvalidArgument.require(bytes + 2 * 4 * layout.count < available, "batch·context",
                                    expected: "activations that fit in memory (\(available >> 20) MiB)",
                                    got: "\(rows) rows needing \(bytes >> 20) MiB of activations")
        buffers = nil
        buffers = ActivationBuffers(config: config, rows: rows, gradients: needsGradients)
    }

    /// Bytes of activation buffers (saved activations, backward scratch) a forward pass over
    /// `rows` = batch × time rows allocates; `training` adds the backward pass's scratch.
    public static func activationBytes(config: TransformerConfig, rows: Int, training: Bool) -> Int {
        ActivationBuffers.byteCount(config: config, rows: rows, gradients: training)
    }

    /// Frees the activation buffers (they are made again by the next forward pass).
    public func releaseActivations() {
        buffers = nil
        lastPass = nil
    }

    /// A per-(layer, site) dropout seed derived from a pass's seed.
    func dropoutSeed(_ seed: UInt64, layer: Int, site: UInt64) -> UInt64 {
        Dropout.mix(seed ^ Dropout.mix(UInt64(layer + 1) << 8 | site))
    }
}
