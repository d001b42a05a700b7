import Foundation
import FlashCore
import FlashAttention

/// A BERT encoder for inference: learned absolute position and token-type embeddings, post-LN
/// blocks (attention → add & norm → feed-forward → add & norm), bidirectional attention.
///
/// A batch of sequences of different lengths is padded to the longest; every matrix product
/// runs once over all batch × length rows, and attention masks the padded keys through
/// `AttentionDescriptor.keyLengths`. Weights are Float32.
public final class BertModel: @unchecked Sendable {
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
    /// [batch, longest, hidden]; rows past a sequence's length are padding and hold no meaning.
    /// Throws `InvalidArgument` for an empty batch or sequence, an id outside the vocabulary or
    /// a sequence longer than the model's positions.
    public func hiddenStates(tokenIDs batch: [[Int]], threads: Int? = nil) throws -> Tensor {
        try withHiddenStates(tokenIDs: batch, threads: threads) { $0.contiguous() }
    }

    /// Calls `body` with the hidden states of `hiddenStates(tokenIDs:threads:)`, held in a
    /// reused workspace: the tensor is valid only inside `body`.
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

    /// The encoder proper, on checked input; returns the hidden-state view into `workspace`.
    func forward(_ batch: [[Int]], workspace: BertWorkspace, threads: Int?) throws -> Tensor {
        let c = configuration
        let lengths = batch.map(\.count)
        let (batchSize, length) = (batch.count, lengths.max()!)
        let rows = batchSize * length
        let (h, i) = (c.hiddenSize, c.intermediateSize)
        let (hidden, qkv, context, attended, intermediate) = workspace.buffers(batch: batchSize, length: length, configuration: c)

        embed(batch, into: hidden.floatPointer, length: length)
        BertLayers.layerNorm(hidden.floatPointer, rows: rows, width: h, gamma: embeddingNorm.gamma.floatPointer,
                             beta: embeddingNorm.beta.floatPointer, epsilon: c.layerNormEpsilon, threads: threads)

        // Q, K and V are strided views into the fused projection: row r holds [q | k | v].
        func view(_ part: Int) -> Tensor {
            Tensor(storage: qkv.storage, elementType: .float32, shape: [batchSize, length, c.headCount, c.headDimension],
                   strides: [length * 3 * h, 3 * h, c.headDimension, 1], offset: qkv.offset + part * h)
        }
        let descriptor = AttentionDescriptor(causal: false, keyLengths: lengths, threads: threads)
        for layer in layers {
            try linear(hidden.floatPointer, rows: rows, inputs: h, weight: layer.qkvWeight, bias: layer.qkvBias,
                       residual: nil, into: qkv.floatPointer, threads: threads)
            _ = try Attention.forward(query: view(0), key: view(1), value: view(2), descriptor: descriptor, output: context)
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

    /// word + position + token-type-0 embeddings for every real token; padding rows are zeroed
    /// (they are never read by real rows, but stale workspace data should not flow through).
    func embed(_ batch: [[Int]], into destination: UnsafeMutablePointer<Float>, length: Int) {
        let h = configuration.hiddenSize
        let (words, positions, types) = (wordEmbeddings.floatPointer, positionEmbeddings.floatPointer, tokenTypeEmbeddings.floatPointer)
        for (b, ids) in batch.enumerated() {
            (destination + (b * length + ids.count) * h).update(repeating: 0, count: (length - ids.count) * h)
            for (t, id) in ids.enumerated() {
                let row = destination + (b * length + t) * h
                row.update(from: words + id * h, count: h)
                VectorMath.add(positions + t * h, to: row, count: h)
                VectorMath.add(types, to: row, count: h)
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
