import Foundation
import FlashCore

/// Attention over a set of named tensors: the core of the `flash attention` command, callable
/// from code and tests without files.
///
/// Tensors (layout [batch, seqLen, heads, headDim], as `Attention` takes them):
/// - `q` [B, Nq, Hq, D], `k` and `v` [B, Nk, Hkv, D], Hq a multiple of Hkv — required;
/// - `bias` additive (finite or −∞), and `mask` (nonzero keeps a logit), each [Nq, Nk] or [B|1, Hq|1, Nq, Nk];
/// - `alibi_slopes` [Hq];
/// - `key_lengths` [B] (whole numbers stored as floats: safetensors here holds F32/F16/BF16);
/// - `dout` [B, Nq, Hq, D], the output gradient — required with `backward`.
///
/// Results: `o` [B, Nq, Hq, D] and `lse` [B, Hq, Nq] (−∞ for a row with no visible key), plus
/// `dq`, `dk`, `dv` with `backward`. All results are Float32.
public enum AttentionJob {
    /// Every scalar option of the command.
    public struct Options: Sendable {
        /// Causal mask, aligned bottom-right (query i sees keys ≤ i + Nk − Nq).
        public var causal = false
        /// Keys visible left / right of the diagonal; `nil` is unbounded.
        public var windowLeft: Int?
        /// See `windowLeft`.
        public var windowRight: Int?
        /// Logit softcap: s ← cap·tanh(s/cap) before the mask (`nil`: none).
        public var softcap: Float?
        /// Multiplies q·k; `nil` is 1/√D.
        public var scale: Float?
        /// Probability of dropping each element of P (kept ones scale by 1/(1 − p)).
        public var dropoutProbability: Float = 0
        /// Seed of the dropout mask (the same seed gives the same mask in forward and backward).
        public var dropoutSeed: UInt64 = 0
        /// Flash (tiled) or standard (S and P in memory).
        public var implementation: AttentionImplementation = .flash
        /// Also compute dQ, dK, dV from the `dout` tensor.
        public var backward = false
        /// Worker threads; `nil` uses all cores.
        public var threads: Int?

        /// The defaults: no mask, no dropout, flash, forward only.
        public init() {}

        /// Parses `LEFT,RIGHT` (each a count ≥ 0, or −1 for unbounded) into `windowLeft/Right`.
        public mutating func setWindow(_ text: String) throws {
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let left = parts[0], let right = parts[1], left >= -1, right >= -1 else {
                throw InvalidArgument("--window", expected: "LEFT,RIGHT with each a count ≥ 0 or −1 for unbounded, e.g. 128,0",
                                      got: "'\(text)'")
            }
            windowLeft = left == -1 ? nil : left
            windowRight = right == -1 ? nil : right
        }

        func validate() throws {
            if let softcap {
                try InvalidArgument.require(softcap.isFinite && softcap > 0, "--softcap", expected: "a finite value > 0", got: "\(softcap)")
            }
            if let scale { try InvalidArgument.require(scale.isFinite, "--scale", expected: "a finite value", got: "\(scale)") }
            try InvalidArgument.require(dropoutProbability >= 0 && dropoutProbability < 1, "--dropout",
                                        expected: "a probability in [0, 1)", got: "\(dropoutProbability)")
            if let threads { try InvalidArgument.require(threads >= 1, "--threads", expected: "≥ 1", got: "\(threads)") }
        }
    }

    /// The tensor names `run` reads; it ignores any others (so a fixture file holding expected
    /// results can be passed as it is).
    public static let inputNames: Set<String> = ["q", "k", "v", "bias", "mask", "alibi_slopes", "key_lengths", "dout"]

    /// Validates the tensors against each other and the options, runs the forward pass (and the
    /// backward pass with `options.backward`), and returns the result tensors by name.
    /// Throws `InvalidArgument` naming the tensor or flag at fault.
    public static func run(tensors: [String: Tensor], options: Options) throws -> [String: Tensor] {
        try options.validate()
        func required(_ name: String) throws -> Tensor {
            guard let tensor = tensors[name] else {
                throw InvalidArgument("tensor '\(name)'", expected: "present in the input file", got: "no tensor of that name")
            }
            return tensor
        }
        let query = try required("q"), key = try required("k"), value = try required("v")
        for (name, tensor) in [("q", query), ("k", key), ("v", value)] {
            try InvalidArgument.require(tensor.rank == 4, "\(name).shape", expected: "[batch, seqLen, heads, headDim]", got: "\(tensor.shape)")
            try requireFinite(tensor, name)
        }
        let (batch, queryLength, heads, headDim) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3])
        let (keyLength, kvHeads) = (key.shape[1], key.shape[2])
        try InvalidArgument.require(batch >= 1 && queryLength >= 1 && heads >= 1 && headDim >= 1, "q.shape",
                                    expected: "every size ≥ 1", got: "\(query.shape)")
        try InvalidArgument.require(key.shape[0] == batch, "k.shape[0]", expected: "the batch of q (\(batch))", got: "\(key.shape[0])")
        try InvalidArgument.require(keyLength >= 1, "k.shape[1]", expected: "≥ 1 keys", got: "\(keyLength)")
        try InvalidArgument.require(kvHeads >= 1 && heads % kvHeads == 0, "k.shape[2]",
                                    expected: "a divisor of q's \(heads) heads", got: "\(kvHeads)")
        try InvalidArgument.require(key.shape[3] == headDim, "k.shape[3]", expected: "q's head dimension (\(headDim))", got: "\(key.shape[3])")
        try InvalidArgument.require(value.shape == key.shape, "v.shape", expected: "the shape of k (\(key.shape))", got: "\(value.shape)")

        var descriptor = AttentionDescriptor(
            scale: options.scale, causal: options.causal, windowLeft: options.windowLeft, windowRight: options.windowRight,
            softcap: options.softcap, dropoutProbability: options.dropoutProbability, dropoutSeed: options.dropoutSeed,
            implementation: options.implementation, threads: options.threads)
        let logitShape = "[\(queryLength), \(keyLength)] or [\(batch)|1, \(heads)|1, \(queryLength), \(keyLength)]"
        if let bias = tensors["bias"] {
            descriptor.bias = try logitTensor(bias, "bias", batch: batch, heads: heads, queryLength: queryLength, keyLength: keyLength, expected: logitShape)
            try requireFinite(bias, "bias", allowingNegativeInfinity: true)
        }
        if let mask = tensors["mask"] {
            descriptor.keepMask = try logitTensor(mask, "mask", batch: batch, heads: heads, queryLength: queryLength, keyLength: keyLength, expected: logitShape)
        }
        if let slopes = tensors["alibi_slopes"] {
            try InvalidArgument.require(slopes.shape == [heads], "alibi_slopes.shape", expected: "[\(heads)] (one per query head)", got: "\(slopes.shape)")
            try requireFinite(slopes, "alibi_slopes")
            descriptor.alibiSlopes = slopes.floats()
        }
        if let lengths = tensors["key_lengths"] {
            try InvalidArgument.require(lengths.shape == [batch], "key_lengths.shape", expected: "[\(batch)] (one per batch entry)", got: "\(lengths.shape)")
            let values = lengths.floats()
            for (index, length) in values.enumerated() {
                try InvalidArgument.require(length == length.rounded() && length >= 0 && length <= Float(keyLength), "key_lengths[\(index)]",
                                            expected: "a whole number in 0...\(keyLength)", got: "\(length)")
            }
            descriptor.keyLengths = values.map { Int($0) }
        }

        let forward = try Attention.forward(query: query, key: key, value: value, descriptor: descriptor)
        var results = ["o": forward.output, "lse": forward.logSumExp]
        if options.backward {
            guard let outputGradient = tensors["dout"] else {
                throw InvalidArgument("tensor 'dout'", expected: "present with --backward (the gradient of o)", got: "no tensor of that name")
            }
            try InvalidArgument.require(outputGradient.shape == query.shape, "dout.shape", expected: "the shape of q (\(query.shape))", got: "\(outputGradient.shape)")
            try requireFinite(outputGradient, "dout")
            let gradients = try Attention.backward(
                query: query, key: key, value: value, output: forward.output, logSumExp: forward.logSumExp,
                logSumExpResidual: forward.logSumExpResidual,
                outputGradient: outputGradient, descriptor: descriptor)
            results["dq"] = gradients.query
            results["dk"] = gradients.key
            results["dv"] = gradients.value
        }
        return results
    }

    /// A bias or mask as a rank-4 view [B|1, H|1, Nq, Nk].
    private static func logitTensor(_ tensor: Tensor, _ name: String, batch: Int, heads: Int, queryLength: Int, keyLength: Int,
                                    expected: String) throws -> Tensor {
        let shape = tensor.rank == 2 ? [1, 1] + tensor.shape : tensor.shape
        let fits = shape.count == 4 && [1, batch].contains(shape[0]) && [1, heads].contains(shape[1])
            && shape[2] == queryLength && shape[3] == keyLength
        try InvalidArgument.require(fits, "\(name).shape", expected: expected, got: "\(tensor.shape)")
        return try tensor.contiguous().reshaped(shape)
    }

    /// Rejects NaN and ±∞ (NaN in, NaN out would be silent); a bias may hold −∞ (a mask).
    private static func requireFinite(_ tensor: Tensor, _ name: String, allowingNegativeInfinity: Bool = false) throws {
        var bad: Float?
        tensor.forEachOffset { position in
            let value = tensor.load(at: position)
            if bad == nil && !value.isFinite && !(allowingNegativeInfinity && value == -.infinity) { bad = value }
        }
        if let bad {
            throw InvalidArgument("tensor '\(name)'", expected: allowingNegativeInfinity ? "finite values or −∞" : "finite values", got: "\(bad)")
        }
    }
}
