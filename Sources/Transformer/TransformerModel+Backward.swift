import Foundation
import FlashCore
import FlashAttention

extension TransformerModel {
    /// Differentiates the last training forward pass and adds the parameter gradients into
    /// `gradients` (call `zeroGradients()` before a step's first micro-batch). `layerDone(l)`
    /// is called as soon as block l's parameter gradients are final (blocks L−1 down to 0), so
    /// data parallelism can start reducing them while the blocks below are differentiated.
    public func backward(layerDone: ((Int) -> Void)? = nil) throws {
        guard let pass = lastPass, case .training(_, let seed) = pass.mode, let b = buffers, b.hasGradients else {
            throw InvalidArgument("backward()", expected: "a preceding forward pass in training mode", got: "none")
        }
        let dropoutSeed: UInt64? = config.dropout > 0 ? seed : nil
        let rows = pass.batch * pass.time, c = config.width, v = config.vocabularySize
        let p = parameters, g = gradients, t = threads
        let pre = config.normPlacement == .pre
        let dLogits = b.logits.floats
        let headInput = pre ? b.finalNorm.floats : b.layerInput[config.layers].floats
        let dHeadInput = pre ? b.normGradient.floats : b.residualGradient.floats
        if let head = layout.head {
            Linear.backward(input: headInput, weight: p + head, outputGradient: dLogits, inputGradient: dHeadInput,
                            weightGradient: g + head, biasGradient: nil, rows: rows, inFeatures: c, outFeatures: v, threads: t)
        } else {
            // logits = h·Eᵀ: dh = dlogits·E, dE += dlogitsᵀ·h.
            GEMM.multiplyUnchecked(transposeA: false, transposeB: false, m: rows, n: c, k: v, alpha: 1, a: dLogits, lda: v,
                                   b: p + layout.tokenEmbedding, ldb: c, beta: 0, c: dHeadInput, ldc: c, threads: t)
            GEMM.multiplyUnchecked(transposeA: true, transposeB: false, m: v, n: c, k: rows, alpha: 1,
                                   a: dLogits, lda: v,
                                   b: headInput, ldb: c, beta: 1, c: g + layout.tokenEmbedding, ldc: c, threads: t)
        }
        if pre {
            normBackward(b.layerInput[config.layers].floats, weight: layout.finalNormWeight!, bias: layout.finalNormBias,
                         stats: b.finalStats.floats, outputGradient: b.normGradient.floats, inputGradient: b.residualGradient.floats,
                         accumulate: false, rows: rows, capacity: b.rows)
        }
        for l in stride(from: config.layers - 1, through: 0, by: -1) {
            try layerBackward(l, batch: pass.batch, time: pass.time, dropoutSeed: dropoutSeed)
            layerDone?(l)
        }
        let dEmbedding = b.residualGradient.floats
        if let dropoutSeed {
            Dropout.apply(dEmbedding, output: dEmbedding, count: rows * c, probability: config.dropout,
                          seed: self.dropoutSeed(dropoutSeed, layer: -1, site: 0), firstIndex: dropoutSequenceOffset * pass.time * c, threads: t)
        }
        Embedding.backward(tokens: b.tokens, outputGradient: dEmbedding, tokenGradient: g + layout.tokenEmbedding,
                           positionGradient: layout.positionEmbedding.map { g + $0 }, batch: pass.batch, time: pass.time,
                           width: c, positions: contextParallel?.positions, threads: t)
    }

    /// Backward through block `l`. On entry `residualGradient` holds ∂L/∂y (the block's
    /// output); on exit ∂L/∂x (its input).
    func layerBackward(_ l: Int, batch: Int, time: Int, dropoutSeed: UInt64?) throws {
        let b = buffers!, o = layout.layers[l], p = parameters, g = gradients, t = threads
        let rows = batch * time, c = config.width
        let pre = config.normPlacement == .pre
        let qkvWidth = (config.heads + 2 * config.kvHeads) * config.headDim
        let x = b.layerInput[l].floats
        let dResidual = b.residualGradient.floats

        /// The gradient flowing into a residual branch: the dropout mask applied, or as is.
        func branchGradient(_ gradient: UnsafeMutablePointer<Float>, site: UInt64) -> UnsafeMutablePointer<Float> {
            guard let dropoutSeed else { return gradient }
            Dropout.apply(gradient, output: b.branch.floats, count: rows * c, probability: config.dropout,
                          seed: self.dropoutSeed(dropoutSeed, layer: l, site: site), firstIndex: dropoutSequenceOffset * time * c, threads: t)
            return b.branch.floats
        }

        // MLP half. dMlpInput receives the gradient w.r.t. the MLP's input.
        let mlpInput = pre ? b.normB[l].floats : b.residual[l].floats
        if pre {
            // y = r + MLP(N2(r)): dr = dy + N2ᵀ(MLPᵀ(dy)).
            mlpBackward(l, input: mlpInput, outputGradient: branchGradient(dResidual, site: 3),
                        inputGradient: b.normGradient.floats, accumulate: false, rows: rows)
            normBackward(b.residual[l].floats, weight: o.norm2Weight, bias: o.norm2Bias, stats: b.statsB[l].floats,
                         outputGradient: b.normGradient.floats, inputGradient: dResidual, accumulate: true, rows: rows, capacity: b.rows)
        } else {
            // y = N2(s2), s2 = r + MLP(r): ds2 = N2ᵀ(dy); dr = ds2 + MLPᵀ(ds2).
            let dSum = b.residualGradient2.floats
            normBackward(b.normB[l].floats, weight: o.norm2Weight, bias: o.norm2Bias, stats: b.statsB[l].floats,
                         outputGradient: dResidual, inputGradient: dSum, accumulate: false, rows: rows, capacity: b.rows)
            mlpBackward(l, input: mlpInput, outputGradient: branchGradient(dSum, site: 3),
                        inputGradient: dSum, accumulate: true, rows: rows)
            // r = N1(s1): ds1 = N1ᵀ(dr), written over dResidual.
            normBackward(b.normA[l].floats, weight: o.norm1Weight, bias: o.norm1Bias, stats: b.statsA[l].floats,
                         outputGradient: dSum, inputGradient: dResidual, accumulate: false, rows: rows, capacity: b.rows)
        }

        // Attention half: s1 = x + proj(attn(qkv(a))), a = N1(x) (pre) or x (post).
        let dProjection = branchGradient(dResidual, site: 1)
        Linear.backward(input: b.attentionOutput[l].floats, weight: p + o.projWeight, outputGradient: dProjection,
                        inputGradient: b.attentionGradient.floats, weightGradient: g + o.projWeight,
                        biasGradient: o.projBias.map { g + $0 }, rows: rows, inFeatures: c, outFeatures: c, threads: t)
        let (query, key, value) = attentionViews(l, batch: batch, time: time)
        let attentionOutput = headsView(b.attentionOutput[l], batch: batch, time: time, heads: config.heads)
        let attentionGradient = headsView(b.attentionGradient, batch: batch, time: time, heads: config.heads)
        let descriptor = attentionDescriptor(layer: l, dropoutSeed: dropoutSeed)
        let dQKV = b.qkvGradient.floats
        if let contextParallel {
            let gradients = try contextParallel.backward(query: query, key: key, value: value, output: attentionOutput,
                                                         logSumExp: b.logSumExp[l]!, outputGradient: attentionGradient,
                                                         descriptor: descriptor)
            scatter(gradients.query, into: dQKV, rowStride: qkvWidth, column: 0, rows: rows)
            scatter(gradients.key, into: dQKV, rowStride: qkvWidth, column: config.heads * config.headDim, rows: rows)
            scatter(gradients.value, into: dQKV, rowStride: qkvWidth, column: (config.heads + config.kvHeads) * config.headDim, rows: rows)
        } else {
            // dQ, dK and dV written straight into their columns of the fused dQKV buffer: no
            // gradient tensors allocated and zeroed per layer, no copies into dQKV afterwards.
            let (dQuery, dKey, dValue) = attentionViews(l, batch: batch, time: time, storage: b.qkvGradient)
            try Attention.backward(query: query, key: key, value: value, output: attentionOutput, logSumExp: b.logSumExp[l]!,
                                   logSumExpResidual: b.logSumExpResidual[l], outputGradient: attentionGradient,
                                   descriptor: descriptor, into: AttentionGradients(query: dQuery, key: dKey, value: dValue))
        }
        rotary?.apply(dQKV, rowStride: qkvWidth, column: 0, heads: config.heads + config.kvHeads,
                      batch: batch, time: time, positionOffset: 0, positions: contextParallel?.positions, inverse: true, threads: t)
        if pre {
            Linear.backward(input: b.normA[l].floats, weight: p + o.qkvWeight, outputGradient: dQKV,
                            inputGradient: b.normGradient.floats, weightGradient: g + o.qkvWeight,
                            biasGradient: o.qkvBias.map { g + $0 }, rows: rows, inFeatures: c, outFeatures: qkvWidth, threads: t)
            normBackward(x, weight: o.norm1Weight, bias: o.norm1Bias, stats: b.statsA[l].floats,
                         outputGradient: b.normGradient.floats, inputGradient: dResidual, accumulate: true, rows: rows, capacity: b.rows)
        } else {
            Linear.backward(input: x, weight: p + o.qkvWeight, outputGradient: dQKV, inputGradient: dResidual,
                            accumulateInput: true, weightGradient: g + o.qkvWeight, biasGradient: o.qkvBias.map { g + $0 },
                            rows: rows, inFeatures: c, outFeatures: qkvWidth, threads: t)
        }
    }

    /// Backward through the MLP of block `l`: `inputGradient` = (or +=) ∂L/∂(MLP input).
    func mlpBackward(_ l: Int, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                     inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool, rows: Int) {
        let b = buffers!, o = layout.layers[l], p = parameters, g = gradients, t = threads
        let c = config.width, f = config.mlpWidth
        let dActivation = b.mlpGradient.floats
        Linear.backward(input: b.mlpActivation[l].floats, weight: p + o.downWeight, outputGradient: outputGradient,
                        inputGradient: dActivation, weightGradient: g + o.downWeight, biasGradient: o.downBias.map { g + $0 },
                        rows: rows, inFeatures: f, outFeatures: c, threads: t)
        let up = b.mlpUp[l].floats
        switch config.activation {
        case .gelu: Activations.geluBackward(input: up, outputGradient: dActivation, inputGradient: dActivation, count: rows * f, threads: t)
        case .relu: Activations.reluBackward(input: up, outputGradient: dActivation, inputGradient: dActivation, count: rows * f, threads: t)
        case .swiglu:
            Activations.swigluBackward(gate: b.mlpGate[l].floats, up: up, outputGradient: dActivation,
                                       gateGradient: b.gateGradient.floats, upGradient: dActivation, count: rows * f, threads: t)
            Linear.backward(input: input, weight: p + o.gateWeight!, outputGradient: b.gateGradient.floats,
                            inputGradient: inputGradient, accumulateInput: accumulate, weightGradient: g + o.gateWeight!,
                            biasGradient: o.gateBias.map { g + $0 }, rows: rows, inFeatures: c, outFeatures: f, threads: t)
        }
        let accumulateUp = accumulate || config.activation == .swiglu
        Linear.backward(input: input, weight: p + o.upWeight, outputGradient: dActivation, inputGradient: inputGradient,
                        accumulateInput: accumulateUp, weightGradient: g + o.upWeight, biasGradient: o.upBias.map { g + $0 },
                        rows: rows, inFeatures: c, outFeatures: f, threads: t)
    }

    /// Copies a [batch, time, heads, D] gradient into columns `column...` of a [rows, rowStride] buffer.
    func scatter(_ tensor: Tensor, into buffer: UnsafeMutablePointer<Float>, rowStride: Int, column: Int, rows: Int) {
        let width = tensor.shape[2] * tensor.shape[3]
        let source = tensor.isContiguous && tensor.elementType == .float32 ? tensor : tensor.contiguous(as: .float32)
        let s = source.floatPointer
        Parallel.forEach(rows, threads: threads) { r in
            (buffer + r * rowStride + column).update(from: s + r * width, count: width)
        }
    }
}
