import Foundation
import FlashAttention
import FlashCore
import ModelFormats

extension LlamaModel: PagedLanguageModel {
    public var vocabularySize: Int { configuration.vocabularySize }
    public var contextLength: Int { configuration.contextLength }

    public var defaultKVCacheType: ElementType { .float16 }

    public func makePagedCache(blockCount: Int, blockSize: Int, elementType: ElementType) throws -> PagedKVCache {
        try PagedKVCache(layers: configuration.layers, blockCount: blockCount, blockSize: blockSize,
                         keyHeads: configuration.keyValueHeads, headDim: configuration.headDimension, elementType: elementType)
    }

    /// The model's layers over every row of `batch` at once (see `PagedLanguageModel`): one
    /// pass over the weights for all sequences. Products are `QuantizedMatrix.multiplyRows`
    /// (each row exactly a decode step's matrix-vector product), attention is
    /// `PagedAttention` (each row on its own), norms, rotation and activations are per row.
    public func forward(_ batch: PagedBatch, cache: PagedKVCache) throws -> [Float] {
        let c = configuration
        try batch.validate(vocabularySize: c.vocabularySize, contextLength: c.contextLength, cache: cache)
        try InvalidArgument.require(cache.layers == c.layers && cache.keyHeads == c.keyValueHeads && cache.headDim == c.headDimension,
                                    "cache", expected: "a cache made by this model", got: "another shape")
        let t = batch.rows
        let hidden = c.hiddenSize, inter = c.intermediateSize
        let qWidth = c.heads * c.headDimension, kvWidth = c.keyValueHeads * c.headDimension
        let x = Buffer(t * hidden), normed = Buffer(t * hidden), residual = Buffer(t * hidden)
        let q = Buffer(t * qWidth), k = Buffer(t * kvWidth), v = Buffer(t * kvWidth), attention = Buffer(t * qWidth)
        let gate = Buffer(t * inter), up = Buffer(t * inter)
        let rows = batch.rowPositions
        let tables = rows.map { batch.sequences[$0.sequence].blockTable }
        let keyCounts = rows.map { $0.position + 1 }
        var firstRow = 0
        var sequenceRows: [(first: Int, count: Int, start: Int)] = []
        for s in batch.sequences {
            sequenceRows.append((firstRow, s.tokens.count, s.start))
            firstRow += s.tokens.count
        }
        for (i, token) in batch.sequences.flatMap(\.tokens).enumerated() { embedding.dequantizeRow(token, into: x.p + i * hidden) }

        for (index, layer) in layers.enumerated() {
            rmsNorm(x.p, weight: layer.attentionNorm, into: normed.p, tokens: t)
            QuantizedMatrix.multiplyRows([(layer.query, q.p, qWidth), (layer.key, k.p, kvWidth), (layer.value, v.p, kvWidth)],
                                         x: normed.p, xStride: hidden, tokens: t, threads: threads)
            for s in sequenceRows {
                rotate(q.p + s.first * qWidth, heads: c.heads, tokens: s.count, start: s.start)
                rotate(k.p + s.first * kvWidth, heads: c.keyValueHeads, tokens: s.count, start: s.start)
            }
            for (r, row) in rows.enumerated() {
                cache.store(layer: index, offset: cache.offset(position: row.position, table: tables[r]),
                            key: k.p + r * kvWidth, value: v.p + r * kvWidth)
            }
            try PagedAttention.forward(PagedAttention.Batch(
                query: q.p, queryRowStride: qWidth, output: attention.p, outputRowStride: qWidth, keyCounts: keyCounts,
                blockTables: tables, keys: cache.keys[index], values: cache.values[index], elementType: cache.elementType,
                blockCount: cache.blockCount, blockSize: cache.blockSize,
                heads: c.heads, keyHeads: c.keyValueHeads, headDim: c.headDimension), threads: threads)
            QuantizedMatrix.multiplyRows([(layer.attentionOutput, residual.p, hidden)], x: attention.p, xStride: qWidth,
                                         tokens: t, threads: threads)
            VectorMath.add(residual.p, to: x.p, count: t * hidden)

            rmsNorm(x.p, weight: layer.feedForwardNorm, into: normed.p, tokens: t)
            QuantizedMatrix.multiplyRows([(layer.gate, gate.p, inter), (layer.up, up.p, inter)],
                                         x: normed.p, xStride: hidden, tokens: t, threads: threads)
            VectorMath.map(gate.p, count: t * inter) { VectorMath.silu($0) }
            for i in 0..<(t * inter) { gate.p[i] *= up.p[i] }
            QuantizedMatrix.multiplyRows([(layer.down, residual.p, hidden)], x: gate.p, xStride: inter, tokens: t, threads: threads)
            VectorMath.add(residual.p, to: x.p, count: t * hidden)
        }

        // The rows whose logits are wanted, gathered, normed and projected.
        let wanted = sequenceRows.enumerated().flatMap { s, range in
            let n = batch.sequences[s].logitRows
            return (range.first + range.count - n)..<(range.first + range.count)
        }
        var logits = [Float](repeating: 0, count: wanted.count * c.vocabularySize)
        guard !wanted.isEmpty else { return logits }
        let gathered = Buffer(wanted.count * hidden)
        for (i, r) in wanted.enumerated() { (gathered.p + i * hidden).update(from: x.p + r * hidden, count: hidden) }
        rmsNorm(gathered.p, weight: outputNorm, into: normed.p, tokens: wanted.count)
        logits.withUnsafeMutableBufferPointer { out in
            QuantizedMatrix.multiplyRows([(output, out.baseAddress!, c.vocabularySize)], x: normed.p, xStride: hidden,
                                         tokens: wanted.count, threads: threads)
        }
        return logits
    }
}
