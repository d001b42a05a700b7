import Foundation
import FlashCore

/// AdamW (Loshchilov & Hutter) over the model's flat parameter buffer, in PyTorch's exact
/// arithmetic order: p ← p·(1 − lr·λ); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
/// p ← p − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε). Weight decay λ applies to weight matrices only —
/// never to norms or biases, and to embeddings only when `decayEmbeddings` is set.
public final class AdamW {
    /// The optimizer's hyper-parameters.
    public struct Options: Codable, Equatable, Sendable {
        /// Decay of the first moment (β₁).
        public var beta1: Float
        /// Decay of the second moment (β₂).
        public var beta2: Float
        /// Added to the denominator (ε).
        public var epsilon: Float
        /// Decoupled weight decay λ, applied as p·(1 − lr·λ).
        public var weightDecay: Float
        /// Whether embeddings decay too (weight matrices always do; norms and biases never).
        public var decayEmbeddings: Bool

        /// GPT-style defaults (β₂ = 0.95, λ = 0.1) unless given.
        public init(beta1: Float = 0.9, beta2: Float = 0.95, epsilon: Float = 1e-8, weightDecay: Float = 0.1, decayEmbeddings: Bool = false) {
            self.beta1 = beta1
            self.beta2 = beta2
            self.epsilon = epsilon
            self.weightDecay = weightDecay
            self.decayEmbeddings = decayEmbeddings
        }
    }

    /// The hyper-parameters.
    public let options: Options
    /// Values of optimizer state per moment (the parameter count, or the shard's under ZeRO-1).
    public let count: Int
    /// The first moment estimates m, `count` values (for `ranges`, in order).
    public let firstMoment: UnsafeMutablePointer<Float>
    /// The second moment estimates v, `count` values.
    public let secondMoment: UnsafeMutablePointer<Float>
    /// Updates taken so far (t in the bias corrections).
    public var step = 0
    /// The ranges of the parameter buffer this optimizer updates.
    public let ranges: [Range<Int>]
    /// Contiguous pieces of the updated ranges, each within one tensor (so each knows whether
    /// it decays), with the index of its first value in the moment buffers; cut into work items.
    let chunks: [(start: Int, count: Int, decays: Bool, moment: Int)]

    /// An optimizer over the whole buffer.
    public convenience init(layout: ParameterLayout, options: Options = Options()) {
        self.init(layout: layout, options: options, ranges: [0..<layout.count])
    }

    /// An optimizer over `ranges` of the buffer only (ZeRO-1: the rank's shard), with moments
    /// for those values alone. Weight decay is still decided per tensor.
    public init(layout: ParameterLayout, options: Options = Options(), ranges: [Range<Int>]) {
        self.options = options
        self.ranges = ranges
        count = ranges.reduce(0) { $0 + $1.count }
        firstMoment = .allocate(capacity: max(count, 1))
        secondMoment = .allocate(capacity: max(count, 1))
        firstMoment.update(repeating: 0, count: count)
        secondMoment.update(repeating: 0, count: count)
        var chunks: [(Int, Int, Bool, Int)] = []
        let piece = 1 << 15
        var moment = 0
        for range in ranges {
            for entry in layout.entries {
                let low = max(range.lowerBound, entry.offset), high = min(range.upperBound, entry.offset + entry.count)
                if low >= high { continue }
                let decays = entry.kind == .matrix || (options.decayEmbeddings && entry.kind == .embedding)
                var start = low
                while start < high {
                    let n = min(piece, high - start)
                    chunks.append((start, n, decays, moment + start - range.lowerBound))
                    start += n
                }
            }
            moment += range.count
        }
        self.chunks = chunks
    }

    deinit {
        firstMoment.deallocate()
        secondMoment.deallocate()
    }

    /// Bytes of optimizer state.
    public var allocatedBytes: Int { 2 * 4 * count }

    /// One update of `parameters` (within `ranges`) from `gradients` at learning rate `learningRate`.
    public func update(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, learningRate: Float, threads: Int? = nil) {
        step += 1
        let b1 = options.beta1, b2 = options.beta2, eps = options.epsilon
        let correction1 = 1 - Float(Foundation.pow(Double(b1), Double(step)))
        let correction2Root = Float(Foundation.sqrt(1 - Foundation.pow(Double(b2), Double(step))))
        let stepSize = learningRate / correction1
        let decayFactor = 1 - learningRate * options.weightDecay
        let m = firstMoment, v = secondMoment
        Parallel.forEach(chunks.count, threads: threads) { index in
            let chunk = chunks[index]
            AdamW.updateChunk(parameters: parameters + chunk.start, gradients: gradients + chunk.start,
                              firstMoment: m + chunk.moment, secondMoment: v + chunk.moment, count: chunk.count,
                              decayFactor: chunk.decays ? decayFactor : nil, beta1: b1, beta2: b2, epsilon: eps,
                              stepSize: stepSize, correction2Root: correction2Root)
        }
    }

    /// One fused pass over `count` values in native vectors (the tail masked by a partial
    /// load/store): decay, both moments and the step, each element with exactly the scalar
    /// formula's operations in its order (no fused multiply-adds), so the vector and scalar
    /// forms agree bit for bit.
    @inline(__always)
    static func updateChunk(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                            firstMoment m: UnsafeMutablePointer<Float>, secondMoment v: UnsafeMutablePointer<Float>, count: Int,
                            decayFactor: Float?, beta1 b1: Float, beta2 b2: Float, epsilon eps: Float,
                            stepSize: Float, correction2Root: Float) {
        typealias V = FloatVector
        let lanes = V.scalarCount
        let oneMinusB1 = V(repeating: 1 - b1), oneMinusB2 = V(repeating: 1 - b2)
        @inline(__always)
        func load(_ p: UnsafePointer<Float>, _ n: Int) -> V {
            if n == lanes { return UnsafeRawPointer(p).loadUnaligned(as: V.self) }
            var x = V()
            for i in 0..<n { x[i] = p[i] }
            return x
        }
        @inline(__always)
        func store(_ x: V, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
            if n == lanes { UnsafeMutableRawPointer(p).storeBytes(of: x, as: V.self); return }
            for i in 0..<n { p[i] = x[i] }
        }
        var e = 0
        while e < count {
            let n = min(lanes, count - e)
            let g = load(gradients + e, n)
            var p = load(parameters + e, n)
            if let decayFactor { p *= decayFactor }
            let mNew = b1 * load(m + e, n) + oneMinusB1 * g
            let vNew = b2 * load(v + e, n) + oneMinusB2 * g * g
            p -= stepSize * mNew / (vNew.squareRoot() / correction2Root + eps)
            store(mNew, m + e, n)
            store(vNew, v + e, n)
            store(p, parameters + e, n)
            e += lanes
        }
    }
}

/// Global gradient-norm clipping, as `torch.nn.utils.clip_grad_norm_`.
public enum GradientClipping {
    /// The L2 norm of `count` values, summed in Float64 over fixed chunks (thread-independent).
    public static func norm(_ values: UnsafePointer<Float>, count: Int, threads: Int? = nil) -> Double {
        let piece = 1 << 15
        let chunks = (count + piece - 1) / piece
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: max(chunks, 1))
        defer { partial.deallocate() }
        Parallel.forEach(chunks, threads: threads) { c in
            partial[c] = VectorMath.sumOfSquares(values + c * piece, count: min(count, (c + 1) * piece) - c * piece)
        }
        var total = 0.0
        for c in 0..<chunks { total += partial[c] }
        return total.squareRoot()
    }

    /// Scales the values so their norm is at most `maxNorm` (by maxNorm/(norm + 1e-6), as
    /// PyTorch). Returns the norm before clipping.
    @discardableResult
    public static func clip(_ values: UnsafeMutablePointer<Float>, count: Int, maxNorm: Double, threads: Int? = nil) -> Double {
        let total = norm(values, count: count, threads: threads)
        let coefficient = maxNorm / (total + 1e-6)
        if coefficient < 1 && total.isFinite {
            Activations.chunked(count, threads: threads) { start, n in
                VectorMath.scale(values + start, count: n, by: Float(coefficient))
            }
        }
        return total
    }
}

/// Linear warm-up from 0 to `peak` over `warmup` steps, then cosine decay to `minimum` at `total`.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
    /// Learning rate at the end of the warm-up.
    public var peak: Float
    /// Learning rate at `total` and after.
    public var minimum: Float
    /// Steps of linear warm-up from 0.
    public var warmup: Int
    /// Step at which the cosine decay reaches `minimum`.
    public var total: Int

    /// A schedule with these values.
    public init(peak: Float, minimum: Float, warmup: Int, total: Int) {
        self.peak = peak
        self.minimum = minimum
        self.warmup = warmup
        self.total = total
    }

    /// The rate for step `step` (0-based).
    public func rate(step: Int) -> Float {
        if step < warmup { return peak * Float(step + 1) / Float(warmup) }
        let span = max(1, total - warmup)
        let progress = min(1, Double(step - warmup) / Double(span))
        return minimum + Float(0.5 * (1 + Foundation.cos(Double.pi * progress))) * (peak - minimum)
    }
}
