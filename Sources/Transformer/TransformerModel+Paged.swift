import Foundation
import FlashAttention
import FlashCore

extension TransformerModel: PagedLanguageModel {
    public var vocabularySize: Int { config.vocabularySize }
    public var contextLength: Int { config.context }

    public var defaultKVCacheType: ElementType { .float32 }

    public func makePagedCache(blockCount: Int, blockSize: Int, elementType: ElementType) throws -> PagedKVCache {
        try PagedKVCache(layers: config.layers, blockCount: blockCount, blockSize: blockSize,
                         keyHeads: config.kvHeads, headDim: config.headDim, elementType: elementType)
    }

    /// Inference over every row of `batch` against a paged cache (see `PagedLanguageModel`),
    /// with the layers of `forward(tokens:...)`: the same norms, products (the GEMM sums each
    /// output element in the same order wherever its row lies), rotary or learned positions and
    /// ALiBi, with attention read through the block tables by `PagedAttention`.
    public func forward(_ batch: PagedBatch, cache: PagedKVCache) throws -> [Float] {
        try batch.validate(vocabularySize: config.vocabularySize, contextLength: config.context, cache: cache)
        try InvalidArgument.require(cache.layers == config.layers && cache.keyHeads == config.kvHeads && cache.headDim == config.headDim,
                                    "cache", expected: "a cache made for this configuration", got: "another shape")
        let rows = batch.rows, c = config.width, f = config.mlpWidth, v = config.vocabularySize
        let h = config.heads, hkv = config.kvHeads, d = config.headDim
        let qkvWidth = (h + 2 * hkv) * d, kvWidth = hkv * d
        let pre = config.normPlacement == .pre
        let p = parameters, t = threads
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            let b = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            b.initialize(repeating: 0, count: max(count, 1))
            return b
        }
        let x = buffer(rows * c), normed = buffer(rows * c), branch = buffer(rows * c), stats = buffer(2 * rows)
        let qkv = buffer(rows * qkvWidth), attention = buffer(rows * h * d)
        let up = buffer(rows * f), gate = buffer(rows * f), activation = buffer(rows * f)
        defer { for b in [x, normed, branch, stats, qkv, attention, up, gate, activation] { b.deallocate() } }

        let positions = batch.rowPositions
        let tables = positions.map { batch.sequences[$0.sequence].blockTable }
        let keyCounts = positions.map { $0.position + 1 }
        var first = 0
        var ranges: [(first: Int, count: Int, start: Int)] = []
        for s in batch.sequences {
            ranges.append((first, s.tokens.count, s.start))
            let tokens = s.tokens.map(Int32.init)
            tokens.withUnsafeBufferPointer {
                Embedding.forward(tokens: $0.baseAddress!, tokenTable: p + layout.tokenEmbedding,
                                  positionTable: layout.positionEmbedding.map { p + $0 }, output: x + first * c,
                                  batch: 1, time: s.tokens.count, width: c, positionOffset: s.start, threads: t)
            }
            first += s.tokens.count
        }

        for l in 0..<config.layers {
            let o = layout.layers[l]
            // Pre-norm: r = x + Attn(N1(x)), y = r + MLP(N2(r)); post-norm: r = N1(x + Attn(x)), y = N2(r + MLP(r)).
            if pre { normForward(x, weight: o.norm1Weight, bias: o.norm1Bias, output: normed, stats: stats, rows: rows, capacity: rows) }
            Linear.forward(input: pre ? normed : x, weight: p + o.qkvWeight, bias: o.qkvBias.map { p + $0 }, output: qkv,
                           rows: rows, inFeatures: c, outFeatures: qkvWidth, threads: t)
            if let rotary {
                for r in ranges {
                    rotary.apply(qkv + r.first * qkvWidth, rowStride: qkvWidth, column: 0, heads: h + hkv,
                                 batch: 1, time: r.count, positionOffset: r.start, inverse: false, threads: t)
                }
            }
            for (r, row) in positions.enumerated() {
                cache.store(layer: l, offset: cache.offset(position: row.position, table: tables[r]),
                            key: qkv + r * qkvWidth + h * d, value: qkv + r * qkvWidth + h * d + kvWidth)
            }
            try PagedAttention.forward(PagedAttention.Batch(
                query: qkv, queryRowStride: qkvWidth, output: attention, outputRowStride: h * d, keyCounts: keyCounts,
                blockTables: tables, keys: cache.keys[l], values: cache.values[l], elementType: cache.elementType,
                blockCount: cache.blockCount, blockSize: cache.blockSize,
                heads: h, keyHeads: hkv, headDim: d, alibiSlopes: alibiSlopes), threads: t)
            Linear.forward(input: attention, weight: p + o.projWeight, bias: o.projBias.map { p + $0 }, output: branch,
                           rows: rows, inFeatures: c, outFeatures: c, threads: t)
            addRows(x, branch, into: x, count: rows * c)
            if !pre {
                normForward(x, weight: o.norm1Weight, bias: o.norm1Bias, output: normed, stats: stats, rows: rows, capacity: rows)
                x.update(from: normed, count: rows * c)
            }
            let mlpInput: UnsafeMutablePointer<Float>
            if pre {
                normForward(x, weight: o.norm2Weight, bias: o.norm2Bias, output: normed, stats: stats, rows: rows, capacity: rows)
                mlpInput = normed
            } else {
                mlpInput = x
            }
            Linear.forward(input: mlpInput, weight: p + o.upWeight, bias: o.upBias.map { p + $0 }, output: up,
                           rows: rows, inFeatures: c, outFeatures: f, threads: t)
            switch config.activation {
            case .gelu: Activations.geluForward(input: up, output: activation, count: rows * f, threads: t)
            case .relu: Activations.reluForward(input: up, output: activation, count: rows * f, threads: t)
            case .swiglu:
                Linear.forward(input: mlpInput, weight: p + o.gateWeight!, bias: o.gateBias.map { p + $0 }, output: gate,
                               rows: rows, inFeatures: c, outFeatures: f, threads: t)
                Activations.swigluForward(gate: gate, up: up, output: activation, count: rows * f, threads: t)
            }
            Linear.forward(input: activation, weight: p + o.downWeight, bias: o.downBias.map { p + $0 }, output: branch,
                           rows: rows, inFeatures: f, outFeatures: c, threads: t)
            addRows(x, branch, into: x, count: rows * c)
            if !pre {
                normForward(x, weight: o.norm2Weight, bias: o.norm2Bias, output: normed, stats: stats, rows: rows, capacity: rows)
                x.update(from: normed, count: rows * c)
            }
        }

        // The wanted rows, gathered, through the final norm and the head.
        let wanted = ranges.enumerated().flatMap { s, r in
            (r.first + r.count - batch.sequences[s].logitRows)..<(r.first + r.count)
        }
        var logits = [Float](repeating: 0, count: wanted.count * v)
        guard !wanted.isEmpty else { return logits }
        for (i, r) in wanted.enumerated() { (branch + i * c).update(from: x + r * c, count: c) }
        let headInput: UnsafeMutablePointer<Float>
        if pre {
            normForward(branch, weight: layout.finalNormWeight!, bias: layout.finalNormBias, output: normed, stats: stats,
                        rows: wanted.count, capacity: rows)
            headInput = normed
        } else {
            headInput = branch
        }
        logits.withUnsafeMutableBufferPointer { out in
            if let head = layout.head {
                Linear.forward(input: headInput, weight: p + head, bias: nil, output: out.baseAddress!, rows: wanted.count,
                               inFeatures: c, outFeatures: v, threads: t)
            } else {
                // Tied: logits = h·Eᵀ with E the [V, C] token embedding, read in place.
                GEMM.multiplyUnchecked(transposeA: false, transposeB: true, m: wanted.count, n: v, k: c, alpha: 1, a: headInput,
                                       lda: c, b: p + layout.tokenEmbedding, ldb: c, beta: 0, c: out.baseAddress!, ldc: v, threads: t)
            }
        }
        return logits
    }
}
