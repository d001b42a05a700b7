import Transformer

/// Bytes each rank sends per optimizer step under the trainer's distributed schemes, and the
/// time at a given link bandwidth (each rank sending at `bandwidth` bytes/s, no overlap).
///
/// - Data parallel (ring all-reduce of S gradient bytes): 2(P−1)/P·S per rank.
/// - ZeRO-1: reduce-scatter (P−1)/P·S plus all-gather of the parameters (P−1)/P·S: the same
///   2(P−1)/P·S (each bucket padded to a multiple of P, ignored here).
/// - Ring attention (C ranks per sequence, this trainer's schedule, `RingAttentionGroup`): per
///   layer and micro-batch, the forward passes K and V of the rank's N/C tokens C−1 hops, the
///   backward passes K and V C−1 hops and the dK/dV accumulators C−1 hops:
///   6(C−1)·(N/C)·d_kv·4 bytes per sequence, d_kv = Hkv·D.
public struct CommunicationEstimate: Codable, Equatable, Sendable {
    /// Gradient (and, under ZeRO-1, parameter) bytes each rank sends per step.
    public var gradientBytes: Double
    /// Ring-attention bytes each rank sends per step.
    public var ringBytes: Double
    /// Seconds per step at the given bandwidth, if nothing overlapped with compute.
    public var seconds: Double

    /// `ranks` P in the job, `contextParallel` C of them per sequence, `microBatch` sequences
    /// per data-parallel group, `accumulate` micro-batches per step, `bandwidth` in bytes/s.
    public init(config: TransformerConfig, ranks: Int, contextParallel: Int = 1, microBatch: Int, sequenceLength: Int,
                accumulate: Int = 1, bandwidth: Double) {
        let p = Double(ranks), c = Double(contextParallel)
        let gradients = 4 * Double(ParameterLayout(config).count)
        gradientBytes = ranks > 1 ? 2 * (p - 1) / p * gradients : 0
        let kv = Double(config.kvHeads * config.headDim)
        let perSequenceLayer = contextParallel > 1 ? 6 * (c - 1) * (Double(sequenceLength) / c) * kv * 4 : 0
        ringBytes = perSequenceLayer * Double(config.layers * microBatch * accumulate)
        seconds = (gradientBytes + ringBytes) / bandwidth
    }
}
