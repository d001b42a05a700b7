import XCTest
import FlashCore
import FlashAttention

/// Packed variable-length batches, the split-KV decode path, strided views of a fused QKV
/// buffer, and determinism across thread counts.
final class AttentionVariantTests: XCTestCase {
    func testVariableLengthMatchesReferencePerSequence() throws {
        let queryLengths = [5, 70, 0, 129], keyLengths = [9, 70, 3, 140]
        let (hq, hkv, d) = (4, 2, 32)
        let cuQ = queryLengths.reduce(into: [0]) { $0.append($0.last! + $1) }
        let cuK = keyLengths.reduce(into: [0]) { $0.append($0.last! + $1) }
        var random = TestRandom(5)
        let query = try Tensor(shape: [cuQ.last!, hq, d], values: random.values(cuQ.last! * hq * d))
        let key = try Tensor(shape: [cuK.last!, hkv, d], values: random.values(cuK.last! * hkv * d))
        let value = try Tensor(shape: [cuK.last!, hkv, d], values: random.values(cuK.last! * hkv * d))
        let outputGradient = try Tensor(shape: [cuQ.last!, hq, d], values: random.values(cuQ.last! * hq * d))
        let descriptor = AttentionDescriptor(causal: true, windowLeft: 50, softcap: 6, alibiSlopes: [0.5, 0.25, 0.125, 0.0625],
                                             dropoutProbability: 0.1, dropoutSeed: 9)
        var results = [AttentionImplementation: (AttentionOutput, AttentionGradients)]()
        for implementation in AttentionImplementation.allCases {
            var described = descriptor
            described.implementation = implementation
            let forward = try Attention.forwardVariableLength(query: query, key: key, value: value, cumulativeQueryLengths: cuQ,
                                                              cumulativeKeyLengths: cuK, descriptor: described)
            XCTAssertEqual(forward.logSumExp.shape, [hq, cuQ.last!])
            let backward = try Attention.backwardVariableLength(
                query: query, key: key, value: value, output: forward.output, logSumExp: forward.logSumExp,
                outputGradient: outputGradient, cumulativeQueryLengths: cuQ, cumulativeKeyLengths: cuK, descriptor: described)
            results[implementation] = (forward, backward)
        }
        // The reference, one sequence at a time.
        let (q, k, v, dO) = (query.floats().map(Double.init), key.floats().map(Double.init),
                             value.floats().map(Double.init), outputGradient.floats().map(Double.init))
        var output = [Double](), lse = [Double](repeating: 0, count: hq * cuQ.last!)
        var dq = [Double](), dk = [Double](), dv = [Double]()
        for s in 0..<queryLengths.count {
            var reference = ReferenceAttention(batch: 1, queryLength: queryLengths[s], keyLength: keyLengths[s],
                                               queryHeads: hq, keyHeads: hkv, headDim: d, scale: Double(Float(1 / Double(d).squareRoot())))
            reference.causal = true
            reference.windowLeft = 50
            reference.softcap = 6
            reference.alibiSlopes = [0.5, 0.25, 0.125, 0.0625]
            reference.dropout = Double(Float(0.1))
            reference.dropoutSeed = 9
            reference.dropoutBatchOffset = s
            let qs = Array(q[cuQ[s] * hq * d..<cuQ[s + 1] * hq * d]), dOs = Array(dO[cuQ[s] * hq * d..<cuQ[s + 1] * hq * d])
            let ks = Array(k[cuK[s] * hkv * d..<cuK[s + 1] * hkv * d]), vs = Array(v[cuK[s] * hkv * d..<cuK[s + 1] * hkv * d])
            let forward = reference.forward(query: qs, key: ks, value: vs)
            output += forward.output
            for h in 0..<hq { for i in 0..<queryLengths[s] { lse[h * cuQ.last! + cuQ[s] + i] = forward.lse[h * queryLengths[s] + i] } }
            let gradients = reference.backward(query: qs, key: ks, value: vs, outputGradient: dOs)
            dq += gradients.query
            dk += gradients.key
            dv += gradients.value
        }
        let c = AttentionCase()
        let (flash, standard) = (results[.flash]!, results[.standard]!)
        assertFlashAccurate(flash.0.output.floats(), standard: standard.0.output.floats(), reference: output, "varlen O", c)
        assertFlashAccurate(flash.0.logSumExp.floats(), standard: standard.0.logSumExp.floats(), reference: lse, "varlen LSE", c)
        assertFlashAccurate(flash.1.query.floats(), standard: standard.1.query.floats(), reference: dq, "varlen dQ", c)
        assertFlashAccurate(flash.1.key.floats(), standard: standard.1.key.floats(), reference: dk, "varlen dK", c)
        assertFlashAccurate(flash.1.value.floats(), standard: standard.1.value.floats(), reference: dv, "varlen dV", c)
    }

    func testDecodeAgainstLongCache() throws {
        for (index, nq) in [1, 3, 16].enumerated() {
            // Nk = 2500 spans three decode splits; forward picks the decode kernel by itself.
            try checkCase(AttentionCase(batch: 1, queryLength: nq, keyLength: 2500, queryHeads: 8, keyHeads: 2, headDim: 64,
                                        causal: true, windowLeft: index == 1 ? 1800 : nil, alibi: index == 2,
                                        keyLengths: index == 0 ? [2300] : nil, seed: UInt64(100 + index)), backward: false)
        }
    }

    func testSingleQueryDecodeWithOptions() throws {
        // One query per key/value head: the decode kernel's row dot-product path.
        try checkCase(AttentionCase(batch: 2, queryLength: 1, keyLength: 1500, queryHeads: 3, keyHeads: 3, headDim: 80,
                                    causal: true, windowLeft: 1000, softcap: 5, alibi: true, biasShape: [2, 1, 1, 1500],
                                    keyLengths: [1500, 1203], seed: 105), backward: false)
        try checkCase(AttentionCase(batch: 1, queryLength: 1, keyLength: 1100, queryHeads: 2, keyHeads: 2, headDim: 16,
                                    dropout: 0.3, elementType: .bfloat16, seed: 106), backward: false)
    }

    func testExplicitDecodeMatchesForward() throws {
        let inputs = try AttentionInputs(AttentionCase(batch: 2, queryLength: 40, keyLength: 1100, queryHeads: 4, keyHeads: 1,
                                                       headDim: 16, causal: true, seed: 110))
        let decoded = try Attention.decode(query: inputs.query, key: inputs.key, value: inputs.value, descriptor: inputs.descriptor)
        let reference = inputs.reference.forward(query: inputs.q, key: inputs.k, value: inputs.v)
        XCTAssertLessThan(maxError(decoded.output.floats(), reference.output), 1e-5)
        XCTAssertLessThan(maxError(decoded.logSumExp.floats(), reference.lse), 1e-5)
    }

    /// q, k, v as strided views of one [B, T, 3·C] buffer (C = H·D), as a transformer's fused
    /// QKV projection produces; the output goes into a strided view too.
    func testStridedViewsOfFusedBuffer() throws {
        let (b, t, h, d) = (2, 67, 3, 32)
        let c = h * d
        var random = TestRandom(120)
        let fused = try Tensor(shape: [b, t, 3 * c], values: random.values(b * t * 3 * c))
        func view(_ part: Int) -> Tensor {
            Tensor(storage: fused.storage, elementType: .float32, shape: [b, t, h, d],
                   strides: [t * 3 * c, 3 * c, d, 1], offset: part * c)
        }
        let (q, k, v) = (view(0), view(1), view(2))
        let target = try Tensor(zeros: [b, t, 2 * c])
        let outputView = Tensor(storage: target.storage, elementType: .float32, shape: [b, t, h, d],
                                strides: [t * 2 * c, 2 * c, d, 1], offset: c)
        let dO = try Tensor(shape: [b, t, h, d], values: random.values(b * t * h * d))
        for implementation in AttentionImplementation.allCases {
            let descriptor = AttentionDescriptor(causal: true, implementation: implementation)
            let strided = try Attention.forward(query: q, key: k, value: v, descriptor: descriptor, output: outputView)
            let dense = try Attention.forward(query: q.contiguous(), key: k.contiguous(), value: v.contiguous(), descriptor: descriptor)
            XCTAssertEqual(outputView.floats(), dense.output.floats())
            XCTAssertEqual(strided.logSumExp.floats(), dense.logSumExp.floats())
            XCTAssertEqual(try target.sliced(axis: 2, 0..<c).floats().allSatisfy { $0 == 0 }, true, "wrote outside the view")
            let stridedGradients = try Attention.backward(query: q, key: k, value: v, output: outputView, logSumExp: strided.logSumExp,
                                                          outputGradient: dO, descriptor: descriptor)
            let denseGradients = try Attention.backward(query: q.contiguous(), key: k.contiguous(), value: v.contiguous(),
                                                        output: dense.output, logSumExp: dense.logSumExp, outputGradient: dO,
                                                        descriptor: descriptor)
            XCTAssertEqual(stridedGradients.query.floats(), denseGradients.query.floats())
            // Gradients straight into the dQ/dK/dV slices of a fused gradient buffer.
            let fusedGradient = try Tensor(shape: [b, t, 3 * c], values: [Float](repeating: .nan, count: b * t * 3 * c))
            func gradientView(_ part: Int) -> Tensor {
                Tensor(storage: fusedGradient.storage, elementType: .float32, shape: [b, t, h, d],
                       strides: [t * 3 * c, 3 * c, d, 1], offset: part * c)
            }
            try Attention.backward(query: q, key: k, value: v, output: outputView, logSumExp: strided.logSumExp,
                                   outputGradient: dO, descriptor: descriptor,
                                   into: AttentionGradients(query: gradientView(0), key: gradientView(1), value: gradientView(2)))
            XCTAssertEqual(gradientView(0).floats(), denseGradients.query.floats())
            XCTAssertEqual(gradientView(1).floats(), denseGradients.key.floats())
            XCTAssertEqual(gradientView(2).floats(), denseGradients.value.floats())
            XCTAssertEqual(stridedGradients.key.floats(), denseGradients.key.floats())
            XCTAssertEqual(stridedGradients.value.floats(), denseGradients.value.floats())
        }
    }

    func testResultsIdenticalForAnyThreadCount() throws {
        for c in [AttentionCase(batch: 1, queryLength: 200, keyLength: 300, queryHeads: 2, keyHeads: 1, headDim: 32,
                                causal: true, dropout: 0.1, seed: 130),
                  AttentionCase(batch: 3, queryLength: 70, keyLength: 70, queryHeads: 2, keyHeads: 2, headDim: 16, seed: 131),
                  AttentionCase(batch: 1, queryLength: 4, keyLength: 3000, queryHeads: 4, keyHeads: 1, headDim: 16, seed: 132)] {
            let inputs = try AttentionInputs(c)
            var results = [[Float]]()
            for threads in [1, 2, 3] {
                var descriptor = inputs.descriptor
                descriptor.threads = threads
                let forward = try Attention.forward(query: inputs.query, key: inputs.key, value: inputs.value, descriptor: descriptor)
                let gradients = try Attention.backward(query: inputs.query, key: inputs.key, value: inputs.value,
                                                       output: forward.output, logSumExp: forward.logSumExp,
                                                       outputGradient: inputs.outputGradient, descriptor: descriptor)
                results.append(forward.output.floats() + forward.logSumExp.floats() + gradients.query.floats()
                               + gradients.key.floats() + gradients.value.floats())
            }
            XCTAssertEqual(results[0], results[1], c.descriptionText)
            XCTAssertEqual(results[0], results[2], c.descriptionText)
        }
    }

    /// The query tile height follows the longest query run of a call (`AttentionTiles.forHeadDimension(_:longestQuery:)`):
    /// 40 query rows (against 200 keys) alone run 48-row tiles, next to a 300-row sequence the
    /// table's. Their output, LSE and gradients must not change by a bit either way.
    func testResultsIndependentOfTheQueryTileHeight() throws {
        let (shortQ, shortK, long, hq, hkv, d) = (40, 200, 300, 2, 1, 32)
        XCTAssertLessThan(AttentionTiles.forHeadDimension(d, longestQuery: shortQ).queryRows,
                          AttentionTiles.forHeadDimension(d, longestQuery: long).queryRows)
        var random = TestRandom(140)
        let q = random.values((shortQ + long) * hq * d), k = random.values((shortK + long) * hkv * d)
        let v = random.values((shortK + long) * hkv * d), dO = random.values((shortQ + long) * hq * d)
        let descriptor = AttentionDescriptor(causal: true, softcap: 20)
        /// O, LSE (per head), dQ, dK, dV of the short sequence, run alone or followed by the long one.
        func shortSequence(besideLong: Bool) throws -> [[Float]] {
            let queries = [shortQ] + (besideLong ? [long] : []), keys = [shortK] + (besideLong ? [long] : [])
            let (totalQ, totalK) = (queries.reduce(0, +), keys.reduce(0, +))
            func tensor(_ values: [Float], _ rows: Int, _ heads: Int) throws -> Tensor {
                try Tensor(shape: [rows, heads, d], values: Array(values[0..<rows * heads * d]))
            }
            let cuQ = queries.reduce(into: [0]) { $0.append($0.last! + $1) }, cuK = keys.reduce(into: [0]) { $0.append($0.last! + $1) }
            let (query, key, value) = (try tensor(q, totalQ, hq), try tensor(k, totalK, hkv), try tensor(v, totalK, hkv))
            let forward = try Attention.forwardVariableLength(query: query, key: key, value: value, cumulativeQueryLengths: cuQ,
                                                              cumulativeKeyLengths: cuK, descriptor: descriptor)
            let gradients = try Attention.backwardVariableLength(
                query: query, key: key, value: value, output: forward.output, logSumExp: forward.logSumExp,
                outputGradient: try tensor(dO, totalQ, hq), cumulativeQueryLengths: cuQ, cumulativeKeyLengths: cuK,
                descriptor: descriptor)
            let lse = forward.logSumExp.floats()
            return [Array(forward.output.floats()[0..<shortQ * hq * d]),
                    (0..<hq).flatMap { h in lse[h * totalQ..<h * totalQ + shortQ] },
                    Array(gradients.query.floats()[0..<shortQ * hq * d]),
                    Array(gradients.key.floats()[0..<shortK * hkv * d]),
                    Array(gradients.value.floats()[0..<shortK * hkv * d])]
        }
        let alone = try shortSequence(besideLong: false), beside = try shortSequence(besideLong: true)
        for (index, name) in ["O", "LSE", "dQ", "dK", "dV"].enumerated() {
            XCTAssertEqual(alone[index].count, beside[index].count, name)
            let first = alone[index].indices.first { alone[index][$0] != beside[index][$0] }
            XCTAssertNil(first, "\(name) differs first at \(first ?? 0)")
        }
    }

    func testEmptySequences() throws {
        for implementation in AttentionImplementation.allCases {
            let descriptor = AttentionDescriptor(causal: true, implementation: implementation)
            // No keys: every row is fully masked.
            let q = try Tensor(shape: [1, 3, 2, 8], values: [Float](repeating: 0.5, count: 48))
            let empty = try Tensor(zeros: [1, 0, 2, 8])
            let result = try Attention.forward(query: q, key: empty, value: empty, descriptor: descriptor)
            XCTAssertEqual(result.output.floats(), [Float](repeating: 0, count: 48))
            XCTAssertEqual(result.logSumExp.floats(), [Float](repeating: -.infinity, count: 6))
            let gradients = try Attention.backward(query: q, key: empty, value: empty, output: result.output,
                                                   logSumExp: result.logSumExp, outputGradient: q, descriptor: descriptor)
            XCTAssertEqual(gradients.query.floats(), [Float](repeating: 0, count: 48))
            // No queries, and no batch entries: empty outputs.
            let noQueries = try Attention.forward(query: empty, key: q, value: q, descriptor: descriptor)
            XCTAssertEqual(noQueries.output.shape, [1, 0, 2, 8])
            let noBatch = try Tensor(zeros: [0, 4, 2, 8])
            XCTAssertEqual(try Attention.forward(query: noBatch, key: noBatch, value: noBatch, descriptor: descriptor).logSumExp.shape, [0, 2, 4])
        }
    }
}
