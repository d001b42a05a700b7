import Foundation
import FlashAttention
import FlashCore
import ModelFormats

/// An inference-only LLaMA-family decoder run straight from a GGUF file: weights stay in their
/// file encoding (memory-mapped) and are used by quantised products.
///
/// Per layer: x += Wo·Attention(RoPE(Wq·n), RoPE(Wk·n), Wv·n) with n = RMSNorm(x)·g_attn, then
/// x += Wdown·(SiLU(Wgate·m) ⊙ Wup·m) with m = RMSNorm(x)·g_ffn; logits = Wout·RMSNorm(x)·g_out,
/// where Wout is `output.weight` or, when the file has none, the tied token embedding.
///
/// Rotary embedding is ggml's "normal" mode: pairs (x[2i], x[2i+1]) rotate by
/// pos·base^(−2i/d). (GGUF converters permute Hugging Face's q/k rows so that this equals the
/// half-split rotation of the original checkpoint.)
public final class LlamaModel: @unchecked Sendable {
    struct Layer {
        let attentionNorm: [Float]
        let query, key, value, attentionOutput: QuantizedMatrix
        let feedForwardNorm: [Float]
        let gate, up, down: QuantizedMatrix
    }

    /// The model's shape, from the GGUF metadata.
    public let configuration: LlamaConfiguration
    /// The GGUF file the weights are read from in place (memory-mapped).
    public let file: GGUFFile
    let embedding: QuantizedMatrix
    let layers: [Layer]
    let outputNorm: [Float]
    let output: QuantizedMatrix
    /// base^(−2i/ropeDimensions) for i < ropeDimensions/2, computed in Float64.
    let inverseFrequencies: [Double]
    /// Threads for every kernel (`nil`: `Parallel.defaultThreads`). The only mutable state: set
    /// it before the model is shared; forward passes use scratch of their own and may run
    /// concurrently, each with its own cache.
    public var threads: Int?

    /// Loads the model in `file`. Throws if a tensor is missing, has the wrong shape, or uses an
    /// encoding this project cannot compute with.
    public init(file: GGUFFile, threads: Int? = nil) throws {
        self.file = file
        self.threads = threads
        let c = try LlamaConfiguration(file: file)
        configuration = c
        func matrix(_ name: String, rows: Int, columns: Int) throws -> QuantizedMatrix {
            let m = try QuantizedMatrix(file: file, name: name)
            guard m.rows == rows, m.columns == columns else {
                throw GGUFError.invalidTensor(name: name, reason: "shape \(m.rows)×\(m.columns), expected \(rows)×\(columns)")
            }
            return m
        }
        func vector(_ name: String, count: Int) throws -> [Float] {
            let m = try matrix(name, rows: 1, columns: count)
            return m.dequantized()
        }
        let kvWidth = c.keyValueHeads * c.headDimension
        embedding = try matrix("token_embd.weight", rows: c.vocabularySize, columns: c.hiddenSize)
        layers = try (0..<c.layers).map { i in
            let p = "blk.\(i)."
            return Layer(
                attentionNorm: try vector(p + "attn_norm.weight", count: c.hiddenSize),
                query: try matrix(p + "attn_q.weight", rows: c.heads * c.headDimension, columns: c.hiddenSize),
                key: try matrix(p + "attn_k.weight", rows: kvWidth, columns: c.hiddenSize),
                value: try matrix(p + "attn_v.weight", rows: kvWidth, columns: c.hiddenSize),
                attentionOutput: try matrix(p + "attn_output.weight", rows: c.hiddenSize, columns: c.heads * c.headDimension),
                feedForwardNorm: try vector(p + "ffn_norm.weight", count: c.hiddenSize),
                gate: try matrix(p + "ffn_gate.weight", rows: c.intermediateSize, columns: c.hiddenSize),
                up: try matrix(p + "ffn_up.weight", rows: c.intermediateSize, columns: c.hiddenSize),
                down: try matrix(p + "ffn_down.weight", rows: c.hiddenSize, columns: c.intermediateSize))
        }
        outputNorm = try vector("output_norm.weight", count: c.hiddenSize)
        output = file.hasTensor("output.weight")
            ? try matrix("output.weight", rows: c.vocabularySize, columns: c.hiddenSize)
            : embedding
        inverseFrequencies = (0..<(c.ropeDimensions / 2)).map { Foundation.pow(c.ropeBase, -2 * Double($0) / Double(c.ropeDimensions)) }
    }

    /// Whether the output head shares the token embedding's weights.
    public var tiedOutput: Bool { !file.hasTensor("output.weight") }

    /// A cache for up to `capacity` positions (default: the model's context length).
    public func makeCache(capacity: Int? = nil) -> LlamaKVCache {
        LlamaKVCache(configuration: configuration, capacity: capacity ?? configuration.contextLength)
    }

    /// Runs `tokens` at the positions after those already in `cache`, appends their keys and
    /// values to it, and returns the logits: of the last token (`vocabularySize` floats), or of
    /// every token (`tokens.count × vocabularySize`, row-major) when `allLogits`.
    public func forward(_ tokens: [Int], cache: LlamaKVCache, allLogits: Bool = false) throws -> [Float] {
        let c = configuration
        let t = tokens.count
        try InvalidArgument.require(t > 0, "tokens", expected: "at least one token", got: "none")
        for (i, token) in tokens.enumerated() {
            try InvalidArgument.require(token >= 0 && token < c.vocabularySize, "tokens[\(i)]",
                                        expected: "an id in 0..<\(c.vocabularySize)", got: "\(token)")
        }
        try InvalidArgument.require(cache.count + t <= cache.capacity, "tokens.count",
                                    expected: "≤ \(cache.capacity - cache.count) (room left in the KV cache)", got: "\(t)")
        try InvalidArgument.require(cache.layers == c.layers && cache.rowSize == c.keyValueHeads * c.headDimension,
                                    "cache", expected: "a cache made by this model", got: "another shape")

        let hidden = c.hiddenSize
        let qWidth = c.heads * c.headDimension
        let kvWidth = c.keyValueHeads * c.headDimension
        let start = cache.count
        let x = Buffer(t * hidden), normed = Buffer(t * hidden)
        // Queries and attention output as [1, t, heads, headDim] tensors for `Attention.forward`.
        let queryTensor = try Tensor(zeros: [1, t, c.heads, c.headDimension])
        let attentionTensor = try Tensor(zeros: [1, t, c.heads, c.headDimension])
        let q = queryTensor.floatPointer, attention = attentionTensor.floatPointer
        // Query i (position start + i) sees cached positions 0...start + i: causal attention
        // aligned bottom-right, which a single decode token (t = 1) runs on the split-KV kernel.
        let descriptor = AttentionDescriptor(causal: true, threads: threads)
        let gate = Buffer(t * c.intermediateSize), up = Buffer(t * c.intermediateSize)
        let residual = Buffer(t * hidden)
        for (i, token) in tokens.enumerated() { embedding.dequantizeRow(token, into: x.p + i * hidden) }

        for (index, layer) in layers.enumerated() {
            rmsNorm(x.p, weight: layer.attentionNorm, into: normed.p, tokens: t)
            let keys = cache.keys[index] + start * kvWidth
            let values = cache.values[index] + start * kvWidth
            QuantizedMatrix.multiplyRows([(layer.query, q, qWidth), (layer.key, keys, kvWidth), (layer.value, values, kvWidth)],
                                         x: normed.p, xStride: hidden, tokens: t, threads: threads)
            rotate(q, heads: c.heads, tokens: t, start: start)
            rotate(keys, heads: c.keyValueHeads, tokens: t, start: start)
            _ = try Attention.forward(query: queryTensor, key: cache.keys(layer: index, length: start + t),
                                      value: cache.values(layer: index, length: start + t),
                                      descriptor: descriptor, output: attentionTensor)
            layer.attentionOutput.multiply(attention, tokens: t, xStride: qWidth, into: residual.p, yStride: hidden, threads: threads)
            VectorMath.add(residual.p, to: x.p, count: t * hidden)

            rmsNorm(x.p, weight: layer.feedForwardNorm, into: normed.p, tokens: t)
            QuantizedMatrix.multiplyRows([(layer.gate, gate.p, c.intermediateSize), (layer.up, up.p, c.intermediateSize)],
                                         x: normed.p, xStride: hidden, tokens: t, threads: threads)
            VectorMath.map(gate.p, count: t * c.intermediateSize) { VectorMath.silu($0) }
            for i in 0..<(t * c.intermediateSize) { gate.p[i] *= up.p[i] }
            layer.down.multiply(gate.p, tokens: t, xStride: c.intermediateSize, into: residual.p, yStride: hidden, threads: threads)
            VectorMath.add(residual.p, to: x.p, count: t * hidden)
        }
        cache.count += t

        let rows = allLogits ? t : 1
        let first = t - rows
        rmsNorm(x.p + first * hidden, weight: outputNorm, into: normed.p, tokens: rows)
        var logits = [Float](repeating: 0, count: rows * c.vocabularySize)
        logits.withUnsafeMutableBufferPointer { out in
            output.multiply(normed.p, tokens: rows, xStride: hidden, into: out.baseAddress!, yStride: c.vocabularySize, threads: threads)
        }
        return logits
    }

    /// y = x / √(mean(x²) + ε) · weight, per token (sum of squares in Float64 for stability).
    func rmsNorm(_ x: UnsafePointer<Float>, weight: [Float], into y: UnsafeMutablePointer<Float>, tokens: Int) {
        let n = configuration.hiddenSize
        for t in 0..<tokens {
            let row = x + t * n
            let meanSquare = VectorMath.dot(row, row, count: n) / Float(n)
            let inverse = 1 / (meanSquare + configuration.rmsEpsilon).squareRoot()
            for i in 0..<n { y[t * n + i] = row[i] * inverse * weight[i] }
        }
    }

    /// Rotates pairs (2i, 2i+1) of the first `ropeDimensions` of each head by pos·θ_i.
    func rotate(_ x: UnsafeMutablePointer<Float>, heads: Int, tokens: Int, start: Int) {
        let d = configuration.headDimension
        let pairs = configuration.ropeDimensions / 2
        var cosines = [Float](repeating: 0, count: pairs), sines = [Float](repeating: 0, count: pairs)
        for t in 0..<tokens {
            let position = Double(start + t)
            for i in 0..<pairs {
                let angle = position * inverseFrequencies[i]
                cosines[i] = Float(Foundation.cos(angle))
                sines[i] = Float(Foundation.sin(angle))
            }
            for h in 0..<heads {
                let v = x + (t * heads + h) * d
                for i in 0..<pairs {
                    let (a, b) = (v[2 * i], v[2 * i + 1])
                    v[2 * i] = a * cosines[i] - b * sines[i]
                    v[2 * i + 1] = a * sines[i] + b * cosines[i]
                }
            }
        }
    }
}

/// A scratch Float32 buffer freed with its owner.
final class Buffer {
    let p: UnsafeMutablePointer<Float>
    init(_ count: Int) {
        p = .allocate(capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
    }
    deinit { p.deallocate() }
}
