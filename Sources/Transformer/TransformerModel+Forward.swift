import Foundation
import FlashCore
import FlashAttention

extension TransformerModel {
    /// Runs the model on `batch` sequences of `time` tokens (`tokens` row-major [batch, time]).
    ///
    /// With `targets` ([batch, time], usually the tokens shifted by one) returns the mean
    /// cross-entropy over all positions; without, returns 0 and leaves the logits readable
    /// through `logits(row:)`. With a `cache` (batch 1), the tokens sit at positions
    /// `cache.length ..< cache.length + time`: their keys and values are appended to the cache
    /// and attention runs against every cached position (bottom-right causal alignment makes
    /// a query see exactly the keys up to its own position).
    @discardableResult
    public func forward(tokens: [Int32], targets: [Int32]? = nil, batch: Int, time: Int,
                        mode: Mode = .inference, cache: KVCache? = nil) throws -> Float {
        let c = config.width, v = config.vocabularySize
        try InvalidArgument.require(batch > 0, "batch", expected: "> 0", got: "\(batch)")
        try InvalidArgument.require(time > 0, "time", expected: "> 0", got: "\(time)")
        try InvalidArgument.require(tokens.count == batch * time, "tokens.count", expected: "batch·time = \(batch * time)", got: "\(tokens.count)")
        let positionOffset = cache?.length ?? 0
        try InvalidArgument.require(positionOffset + time <= config.context, "time",
                                    expected: "positions within the context (\(config.context))", got: "\(positionOffset) + \(time)")
        if let cache {
            try InvalidArgument.require(batch == 1, "batch", expected: "1 with a KV cache", got: "\(batch)")
            try InvalidArgument.require(cache.length + time <= cache.capacity, "cache", expected: "room for \(time) more positions", got: "\(cache.capacity - cache.length)")
            try InvalidArgument.require(cache.keys.count == config.layers && cache.keys[0].shape[2] == config.kvHeads && cache.keys[0].shape[3] == config.headDim,
                                        "cache", expected: "a cache made for this configuration", got: "\(cache.keys[0].shape)")
        }
        for (i, token) in tokens.enumerated() {
            try InvalidArgument.require(token >= 0 && Int(token) < v, "tokens[\(i)]", expected: "in 0..<\(v)", got: "\(token)")
        }
        if let targets {
            try InvalidArgument.require(targets.count == batch * time, "targets.count", expected: "\(batch * time)", got: "\(targets.count)")
            for (i, token) in targets.enumerated() {
                try InvalidArgument.require(token >= 0 && Int(token) < v, "targets[\(i)]", expected: "in 0..<\(v)", got: "\(token)")
            }
        }
        var lossScale: Float? = nil, dropoutSeed: UInt64? = nil
        if case .training(let scale, let seed) = mode {
            try InvalidArgument.require(targets != nil, "targets", expected: "given for a training pass", got: "nil")
            try InvalidArgument.require(cache == nil, "cache", expected: "nil for a training pass", got: "a cache")
            lossScale = scale
            if config.dropout > 0 { dropoutSeed = seed }
        }

        let rows = batch * time
        try ensureBuffers(rows: rows, gradients: lossScale != nil)
        let b = buffers!
        lastPass = nil
        tokens.withUnsafeBufferPointer { b.tokens.update(from: $0.baseAddress!, count: rows) }
        if let targets { targets.withUnsafeBufferPointer { b.targets.update(from: $0.baseAddress!, count: rows) } }
        let p = parameters, t = threads

        Embedding.forward(tokens: b.tokens, tokenTable: p + layout.tokenEmbedding, positionTable: layout.positionEmbedding.map { p + $0 },
                          output: b.layerInput[0].floats, batch: batch, time: time, width: c, positionOffset: positionOffset,
                          positions: contextParallel?.positions, threads: t)
        if let dropoutSeed {
            Dropout.apply(b.layerInput[0].floats, output: b.layerInput[0].floats, count: rows * c, probability: config.dropout,
                          seed: self.dropoutSeed(dropoutSeed, layer: -1, site: 0), firstIndex: dropoutSequenceOffset * time * c, threads: t)
        }
        for l in 0..<config.layers {
            try layerForward(l, batch: batch, time: time, positionOffset: positionOffset, dropoutSeed: dropoutSeed, cache: cache)
        }
        let headInput: UnsafeMutablePointer<Float>
        if config.normPlacement == .pre {
            normForward(b.layerInput[config.layers].floats, weight: layout.finalNormWeight!, bias: layout.finalNormBias,
                        output: b.finalNorm.floats, stats: b.finalStats.floats, rows: rows, capacity: b.rows)
            headInput = b.finalNorm.floats
        } else {
            headInput = b.layerInput[config.layers].floats
        }
        if let head = layout.head {
            Linear.forward(input: headInput, weight: p + head, bias: nil, output: b.logits.floats, rows: rows, inFeatures: c, outFeatures: v, threads: t)
        } else {
            // Tied: logits = h · Eᵀ with E the [V, C] token embedding, as stored (transposed B).
            GEMM.multiplyUnchecked(transposeA: false, transposeB: true, m: rows, n: v, k: c, alpha: 1, a: headInput, lda: c,
                                   b: p + layout.tokenEmbedding, ldb: c, beta: 0, c: b.logits.floats, ldc: v, threads: t)
        }
        cache?.length += time
        lastPass = (batch, time, mode)
        guard targets != nil else { return 0 }
        let total = CrossEntropy.forward(logits: b.logits.floats, targets: b.targets, losses: b.losses.floats, rows: rows,
                                         vocabulary: v, gradientScale: lossScale, threads: t)
        return Float(total / Double(rows))
    }

    /// One block. Pre-norm: r = x + Attn(N1(x)), y = r + MLP(N2(r)).
    /// Post-norm: r = N1(x + Attn(x)), y = N2(r + MLP(r)).
    func layerForward(_ l: Int, batch: Int, time: Int, positionOffset: Int, dropoutSeed: UInt64?, cache: KVCache?) throws {
        let b = buffers!, o = layout.layers[l], p = parameters, t = threads
        let rows = batch * time, c = config.width, f = config.mlpWidth
        let pre = config.normPlacement == .pre
        let qkvWidth = (config.heads + 2 * config.kvHeads) * config.headDim
        let x = b.layerInput[l].floats

        let attentionInput: UnsafeMutablePointer<Float>
        if pre {
            normForward(x, weight: o.norm1Weight, bias: o.norm1Bias, output: b.normA[l].floats, stats: b.statsA[l].floats, rows: rows, capacity: b.rows)
            attentionInput = b.normA[l].floats
        } else {
            attentionInput = x
        }
        let qkv = b.qkv[l].floats
        Linear.forward(input: attentionInput, weight: p + o.qkvWeight, bias: o.qkvBias.map { p + $0 }, output: qkv,
                       rows: rows, inFeatures: c, outFeatures: qkvWidth, threads: t)
        // Query and key heads are adjacent columns, so one pass rotates both.
        rotary?.apply(qkv, rowStride: qkvWidth, column: 0, heads: config.heads + config.kvHeads,
                      batch: batch, time: time, positionOffset: positionOffset, positions: contextParallel?.positions,
                      inverse: false, threads: t)
        var (query, key, value) = attentionViews(l, batch: batch, time: time)
        if let cache {
            let kvWidth = config.kvHeads * config.headDim
            let keyStart = config.heads * config.headDim
            for row in 0..<time {
                let source = qkv + row * qkvWidth
                (cache.keys[l].floatPointer + (positionOffset + row) * kvWidth).update(from: source + keyStart, count: kvWidth)
                (cache.values[l].floatPointer + (positionOffset + row) * kvWidth).update(from: source + keyStart + kvWidth, count: kvWidth)
            }
            key = try cache.keys[l].sliced(axis: 1, 0..<(positionOffset + time))
            value = try cache.values[l].sliced(axis: 1, 0..<(positionOffset + time))
        }
        let output = headsView(b.attentionOutput[l], batch: batch, time: time, heads: config.heads)
        let descriptor = attentionDescriptor(layer: l, dropoutSeed: dropoutSeed)
        // Ring attention merges partial LSEs and has no residual; its backward recomputes P from
        // the LSE alone.
        let result: (output: Tensor, logSumExp: Tensor, logSumExpResidual: Tensor?)
        if let contextParallel {
            let ring = try contextParallel.forward(query: query, key: key, value: value, descriptor: descriptor)
            result = (ring.output, ring.logSumExp, nil)
        } else {
            let full = try Attention.forward(query: query, key: key, value: value, descriptor: descriptor, output: output)
            result = (full.output, full.logSumExp, full.logSumExpResidual)
        }
        b.logSumExp[l] = result.logSumExp
        b.logSumExpResidual[l] = result.logSumExpResidual
        if result.output.storage !== output.storage || result.output.offset != output.offset || !result.output.isContiguous {
            // The attention API may hand back its own tensor; keep ours authoritative.
            copy(result.output, into: b.attentionOutput[l].floats)
        }

        Linear.forward(input: b.attentionOutput[l].floats, weight: p + o.projWeight, bias: o.projBias.map { p + $0 },
                       output: b.branch.floats, rows: rows, inFeatures: c, outFeatures: c, threads: t)
        if let dropoutSeed {
            Dropout.apply(b.branch.floats, output: b.branch.floats, count: rows * c, probability: config.dropout,
                          seed: self.dropoutSeed(dropoutSeed, layer: l, site: 1), firstIndex: dropoutSequenceOffset * time * c, threads: t)
        }
        let sum1 = pre ? b.residual[l].floats : b.normA[l].floats
        addRows(x, b.branch.floats, into: sum1, count: rows * c)
        if !pre {
            normForward(sum1, weight: o.norm1Weight, bias: o.norm1Bias, output: b.residual[l].floats, stats: b.statsA[l].floats, rows: rows, capacity: b.rows)
        }
        let mlpInput: UnsafeMutablePointer<Float>
        if pre {
            normForward(b.residual[l].floats, weight: o.norm2Weight, bias: o.norm2Bias, output: b.normB[l].floats, stats: b.statsB[l].floats, rows: rows, capacity: b.rows)
            mlpInput = b.normB[l].floats
        } else {
            mlpInput = b.residual[l].floats
        }
        let up = b.mlpUp[l].floats, activation = b.mlpActivation[l].floats
        Linear.forward(input: mlpInput, weight: p + o.upWeight, bias: o.upBias.map { p + $0 }, output: up,
                       rows: rows, inFeatures: c, outFeatures: f, threads: t)
        switch config.activation {
        case .gelu: Activations.geluForward(input: up, output: activation, count: rows * f, threads: t)
        case .relu: Activations.reluForward(input: up, output: activation, count: rows * f, threads: t)
        case .swiglu:
            let gate = b.mlpGate[l].floats
            Linear.forward(input: mlpInput, weight: p + o.gateWeight!, bias: o.gateBias.map { p + $0 }, output: gate,
                           rows: rows, inFeatures: c, outFeatures: f, threads: t)
            Activations.swigluForward(gate: gate, up: up, output: activation, count: rows * f, threads: t)
        }
        Linear.forward(input: activation, weight: p + o.downWeight, bias: o.downBias.map { p + $0 }, output: b.branch.floats,
                       rows: rows, inFeatures: f, outFeatures: c, threads: t)
        if let dropoutSeed {
            Dropout.apply(b.branch.floats, output: b.branch.floats, count: rows * c, probability: config.dropout,
                          seed: self.dropoutSeed(dropoutSeed, layer: l, site: 3), firstIndex: dropoutSequenceOffset * time * c, threads: t)
        }
        let sum2 = pre ? b.layerInput[l + 1].floats : b.normB[l].floats
        addRows(b.residual[l].floats, b.branch.floats, into: sum2, count: rows * c)
        if !pre {
            normForward(sum2, weight: o.norm2Weight, bias: o.norm2Bias, output: b.layerInput[l + 1].floats, stats: b.statsB[l].floats, rows: rows, capacity: b.rows)
        }
    }

    // MARK: helpers shared with the backward pass

    /// Query, key and value as [batch, time, heads, D] views of layer `l`'s fused QKV buffer
    /// (or of `storage`, laid out the same way: the fused dQKV gradient).
    func attentionViews(_ l: Int, batch: Int, time: Int, storage: TensorStorage? = nil) -> (Tensor, Tensor, Tensor) {
        let d = config.headDim, h = config.heads, hkv = config.kvHeads
        let qkvWidth = (h + 2 * hkv) * d
        let storage = storage ?? buffers!.qkv[l]
        func view(heads: Int, column: Int) -> Tensor {
            Tensor(storage: storage, elementType: .float32, shape: [batch, time, heads, d],
                   strides: [time * qkvWidth, qkvWidth, d, 1], offset: column)
        }
        return (view(heads: h, column: 0), view(heads: hkv, column: h * d), view(heads: hkv, column: (h + hkv) * d))
    }

    /// A contiguous [batch, time, heads, D] view of `storage`.
    func headsView(_ storage: TensorStorage, batch: Int, time: Int, heads: Int) -> Tensor {
        let shape = [batch, time, heads, config.headDim]
        return Tensor(storage: storage, elementType: .float32, shape: shape, strides: Tensor.contiguousStrides(shape), offset: 0)
    }

    func attentionDescriptor(layer: Int, dropoutSeed: UInt64?) -> AttentionDescriptor {
        var descriptor = AttentionDescriptor(causal: true, alibiSlopes: alibiSlopes,
                                             dropoutProbability: dropoutSeed == nil ? 0 : config.dropout,
                                             dropoutSeed: dropoutSeed.map { self.dropoutSeed($0, layer: layer, site: 2) } ?? 0,
                                             implementation: attentionImplementation, threads: threads)
        descriptor.dropoutSequenceOffset = dropoutSequenceOffset
        return descriptor
    }

    /// Copies a Float32 tensor, in row-major order, into `destination`.
    func copy(_ tensor: Tensor, into destination: UnsafeMutablePointer<Float>) {
        if tensor.isContiguous && tensor.elementType == .float32 {
            destination.update(from: tensor.floatPointer, count: tensor.elementCount)
        } else {
            var i = 0
            tensor.forEachOffset { destination[i] = tensor.load(at: $0); i += 1 }
        }
    }

    /// out = a + b elementwise (out may alias a or b).
    func addRows(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        Activations.chunked(count, threads: threads) { start, n in
            for i in start..<(start + n) { out[i] = a[i] + b[i] }
        }
    }

    /// The configured norm. `stats` holds mean at [0, capacity) and rstd at [capacity, 2·capacity).
    func normForward(_ input: UnsafePointer<Float>, weight: Int, bias: Int?, output: UnsafeMutablePointer<Float>,
                     stats: UnsafeMutablePointer<Float>, rows: Int, capacity: Int) {
        let p = parameters
        switch config.norm {
        case .layerNorm:
            LayerNorm.forward(input: input, weight: p + weight, bias: bias.map { p + $0 }, output: output, mean: stats,
                              rstd: stats + capacity, rows: rows, width: config.width, epsilon: config.normEpsilon, threads: threads)
        case .rmsNorm:
            RMSNorm.forward(input: input, weight: p + weight, output: output, rstd: stats + capacity, rows: rows,
                            width: config.width, epsilon: config.normEpsilon, threads: threads)
        }
    }

    func normBackward(_ input: UnsafePointer<Float>, weight: Int, bias: Int?, stats: UnsafePointer<Float>,
                      outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                      rows: Int, capacity: Int) {
        let p = parameters, g = gradients
        switch config.norm {
        case .layerNorm:
            LayerNorm.backward(input: input, weight: p + weight, mean: stats, rstd: stats + capacity, outputGradient: outputGradient,
                               inputGradient: inputGradient, accumulate: accumulate, weightGradient: g + weight,
                               biasGradient: bias.map { g + $0 }, rows: rows, width: config.width, threads: threads)
        case .rmsNorm:
            RMSNorm.backward(input: input, weight: p + weight, rstd: stats + capacity, outputGradient: outputGradient,
                             inputGradient: inputGradient, accumulate: accumulate, weightGradient: g + weight,
                             rows: rows, width: config.width, threads: threads)
        }
    }
}
