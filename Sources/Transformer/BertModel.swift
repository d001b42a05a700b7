import Foundation
import FlashCore
import FlashAttention

/// A BERT encoder for inference: learned absolute position and token-type embeddings, post-LN
/// blocks (attention → add & norm → feed-forward → add & norm), bidirectional attention.
///
/// A batch of sequences of different lengths runs as one matrix of all its real tokens (the
/// sequences' rows one after another, no padding), so every matrix product, norm and
/// activation runs once over the whole batch and spends nothing on padding. Only attention
/// needs the sequences side by side: Q, K, V are scattered into a batch padded to the longest
/// sequence, and `AttentionDescriptor.keyLengths` masks the padded keys. Weights are Float32.
public final class BertModel: @unchecked Sendable {
    /// The hyper-parameters the weights were loaded with.
    public let configuration: BertConfiguration
    let wordEmbeddings: Tensor
    let positionEmbeddings: Tensor
    let tokenTypeEmbeddings: Tensor
    let embeddingNorm: BertLayerNormWeights
    let layers: [BertBlockWeights]
    let workspaceLock = NSLock()
    var cachedWorkspace: BertWorkspace?

    init(configuration: BertConfiguration, wordEmbeddings: Tensor, positionEmbeddings: Tensor, tokenTypeEmbeddings: Tensor,
         embeddingNorm: BertLayerNormWeights, layers: [BertBlockWeights]) {
        self.configuration = configuration
        self.wordEmbeddings = wordEmbeddings
        self.positionEmbeddings = positionEmbeddings
        self.tokenTypeEmbeddings = tokenTypeEmbeddings
        self.embeddingNorm = embeddingNorm
        self.layers = layers
    }

    /// The last layer's hidden states for a batch of token-id sequences (token type 0), shape
    /// [batch, longest, hidden]; rows past a sequence's length are zero. Throws
    /// `InvalidArgument` for an empty batch or sequence, an id outside the vocabulary or a
    /// sequence longer than the model's positions.
    public func hiddenStates(tokenIDs batch: [[Int]], threads: Int? = nil) throws -> Tensor {
        try withHiddenStates(tokenIDs: batch, threads: threads) { packed in
            let h = configuration.hiddenSize
            let longest = batch.map(\.count).max()!
            let result = try Tensor(zeros: [batch.count, longest, h])
            var row = 0
            for (b, ids) in batch.enumerated() {
                (result.floatPointer + b * longest * h).update(from: packed.floatPointer + row * h, count: ids.count * h)
                row += ids.count
            }
            return result
        }
    }

    /// Calls `body` with the hidden states of all tokens as one [tokens, hidden] matrix, the
    /// sequences' rows one after another, held in a reused workspace: valid only inside `body`.
    func withHiddenStates<R>(tokenIDs batch: [[Int]], threads: Int?, _ body: (Tensor) throws -> R) throws -> R {
        let c = configuration
        try InvalidArgument.require(!batch.isEmpty, "tokenIDs", expected: "at least one sequence", got: "none")
        for (b, ids) in batch.enumerated() {
            try InvalidArgument.require(!ids.isEmpty && ids.count <= c.maxPositions, "tokenIDs[\(b)].count",
                                        expected: "1...\(c.maxPositions) (the model's positions)", got: "\(ids.count)")
            if let bad = ids.first(where: { $0 < 0 || $0 >= c.vocabularySize }) {
                throw InvalidArgument("tokenIDs[\(b)]", expected: "ids in 0..<\(c.vocabularySize)", got: "\(bad)")
            }
        }
        return try withWorkspace { workspace in try body(forward(batch, workspace: workspace, threads: threads)) }
    }

    /// The encoder proper, on checked input; returns the [tokens, hidden] view into `workspace`.
    func forward(_ batch: [[Int]], workspace: BertWorkspace, threads: Int?) throws -> Tensor {
        let c = configuration
        let lengths = batch.map(\.count)
        let (batchSize, longest) = (batch.count, lengths.max()!)
        let rows = lengths.reduce(0, +)
        let (h, i) = (c.hiddenSize, c.intermediateSize)
        let buffers = workspace.buffers(rows: rows, batch: batchSize, longest: longest, configuration: c)
        let (hidden, qkv, context, attended, intermediate) = (buffers.hidden, buffers.qkv, buffers.context, buffers.attended, buffers.intermediate)
        // Equal lengths need no padding: attention then reads and writes the packed rows in place.
        let padded = lengths.contains { $0 != longest }
        let (paddedQKV, paddedContext) = padded ? (buffers.paddedQKV, buffers.paddedContext) : (qkv, context)
        if padded {
            // Padded rows are masked (keys) or ignored (queries); zero them once so they hold no stale data.
            for (b, length) in lengths.enumerated() where length < longest {
                (paddedQKV.floatPointer + (b * longest + length) * 3 * h).update(repeating: 0, count: (longest - length) * 3 * h)
            }
        }

        embed(batch, into: hidden.floatPointer)
        BertLayers.layerNorm(hidden.floatPointer, rows: rows, width: h, gamma: embeddingNorm.gamma.floatPointer,
                             beta: embeddingNorm.beta.floatPointer, epsilon: c.layerNormEpsilon, threads: threads)

        // Q, K and V are strided views into the fused projection: row r holds [q | k | v].
        func view(_ part: Int) -> Tensor {
            Tensor(storage: paddedQKV.storage, elementType: .float32, shape: [batchSize, longest, c.headCount, c.headDimension],
                   strides: [longest * 3 * h, 3 * h, c.headDimension, 1], offset: paddedQKV.offset + part * h)
        }
        let attentionOutput = Tensor(storage: paddedContext.storage, elementType: .float32,
                                     shape: [batchSize, longest, c.headCount, c.headDimension],
                                     strides: [longest * h, h, c.headDimension, 1], offset: paddedContext.offset)
        let descriptor = AttentionDescriptor(causal: false, keyLengths: lengths, threads: threads)
        for layer in layers {
            try linear(hidden.floatPointer, rows: rows, inputs: h, weight: layer.qkvWeight, bias: layer.qkvBias,
                       residual: nil, into: qkv.floatPointer, threads: threads)
            if padded { Self.copyRows(from: qkv.floatPointer, packed: true, to: paddedQKV.floatPointer, lengths: lengths, longest: longest, width: 3 * h) }
            _ = try Attention.forward(query: view(0), key: view(1), value: view(2), descriptor: descriptor, output: attentionOutput)
            if padded { Self.copyRows(from: paddedContext.floatPointer, packed: false, to: context.floatPointer, lengths: lengths, longest: longest, width: h) }
            try linear(context.floatPointer, rows: rows, inputs: h, weight: layer.attentionOutputWeight,
                       bias: layer.attentionOutputBias, residual: hidden.floatPointer, into: attended.floatPointer, threads: threads)
            BertLayers.layerNorm(attended.floatPointer, rows: rows, width: h, gamma: layer.attentionNorm.gamma.floatPointer,
                                 beta: layer.attentionNorm.beta.floatPointer, epsilon: c.layerNormEpsilon, threads: threads)
            try linear(attended.floatPointer, rows: rows, inputs: h, weight: layer.intermediateWeight,
                       bias: layer.intermediateBias, residual: nil, into: intermediate.floatPointer, threads: threads)
            BertLayers.activate(intermediate.floatPointer, count: rows * i, activation: c.activation, threads: threads)
            try linear(intermediate.floatPointer, rows: rows, inputs: i, weight: layer.outputWeight,
                       bias: layer.outputBias, residual: attended.floatPointer, into: hidden.floatPointer, threads: threads)
            BertLayers.layerNorm(hidden.floatPointer, rows: rows, width: h, gamma: layer.outputNorm.gamma.floatPointer,
                                 beta: layer.outputNorm.beta.floatPointer, epsilon: c.layerNormEpsilon, threads: threads)
        }
        return hidden
    }

    /// Moves each sequence's rows between the packed layout (sequences back to back) and the
    /// padded one (sequence b at rows b·longest ..< b·longest + length); `packed` says which
    /// layout `source` has.
    static func copyRows(from source: UnsafePointer<Float>, packed: Bool, to destination: UnsafeMutablePointer<Float>,
                         lengths: [Int], longest: Int, width: Int) {
        var packedRow = 0
        for (b, length) in lengths.enumerated() {
            let paddedRow = b * longest
            if packed {
                (destination + paddedRow * width).update(from: source + packedRow * width, count: length * width)
            } else {
                (destination + packedRow * width).update(from: source + paddedRow * width, count: length * width)
            }
            packedRow += length
        }
    }

    /// word + position + token-type-0 embeddings, one row per token, sequences back to back.
    func embed(_ batch: [[Int]], into destination: UnsafeMutablePointer<Float>) {
        let h = configuration.hiddenSize
        let (words, positions, types) = (wordEmbeddings.floatPointer, positionEmbeddings.floatPointer, tokenTypeEmbeddings.floatPointer)
        var row = destination
        for ids in batch {
            for (t, id) in ids.enumerated() {
                row.update(from: words + id * h, count: h)
                VectorMath.add(positions + t * h, to: row, count: h)
                VectorMath.add(types, to: row, count: h)
                row += h
            }
        }
    }

    /// output = input·W + bias (+ residual), W stored [in, out]: the rows are filled with
    /// bias (+ residual) and the product is accumulated on top in one GEMM (β = 1).
    func linear(_ input: UnsafePointer<Float>, rows: Int, inputs: Int, weight: Tensor, bias: Tensor,
                residual: UnsafePointer<Float>?, into output: UnsafeMutablePointer<Float>, threads: Int?) throws {
        let outputs = weight.shape[1]
        BertLayers.fillRows(output, rows: rows, width: outputs, bias: bias.floatPointer, residual: residual, threads: threads)
        try GEMM.multiply(transposeA: false, transposeB: false, m: rows, n: outputs, k: inputs, alpha: 1,
                          a: input, lda: inputs, b: weight.floatPointer, ldb: outputs, beta: 1,
                          c: output, ldc: outputs, threads: threads)
    }
}

/// γ and β of one layer norm.
struct BertLayerNormWeights {
    var gamma: Tensor
    var beta: Tensor
}

/// One encoder block's weights. Matrices are stored [in, out] (transposed from Hugging Face's
/// [out, in] at load time), so GEMM packs each weight panel with contiguous vector copies;
/// Q/K/V are fused into one [hidden, 3·hidden] projection.
struct BertBlockWeights {
    var qkvWeight: Tensor
    var qkvBias: Tensor
    var attentionOutputWeight: Tensor
    var attentionOutputBias: Tensor
    var attentionNorm: BertLayerNormWeights
    var intermediateWeight: Tensor
    var intermediateBias: Tensor
    var outputWeight: Tensor
    var outputBias: Tensor
    var outputNorm: BertLayerNormWeights
}
