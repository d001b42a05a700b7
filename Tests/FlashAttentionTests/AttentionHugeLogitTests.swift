import XCTest
import FlashCore
import FlashAttention

/// Logits of magnitude ~10³ (q and k of norm ~300 at D = 64, no QK-norm, as in unstable
/// training). The backward must recompute P = e^(s − m)/l as accurately as a Float32 program
/// that subtracts the exact row max: subtracting one Float32 LSE ≈ 10³ from logits of the same
/// size would lose P's low bits (LSE's own rounding is ~3·10⁻⁵ there), giving dV errors 20–200×
/// PyTorch's. FlashAttention's rule, with the textbook Float32 program as the baseline: both
/// implementations' errors against the Float64 reference are at most twice its error plus slack.
final class AttentionHugeLogitTests: XCTestCase {
    func testBackwardUnderHugeLogitsMeetsTheTwiceFloat32Rule() throws {
        let shapes = [(96, 96, 2, 2), (130, 130, 4, 2), (200, 160, 4, 1), (64, 200, 2, 1)]
        var index = 0
        for (nq, nk, hq, hkv) in shapes {
            for causal in [false, true] {
                for d in index % 3 == 2 ? [128] : [64] {
                    // Uniform in [−a, a]: norm a·√(D/3) ≈ 300.
                    let a = 300 / (Double(d) / 3).squareRoot()
                    try checkHugeLogitCase(AttentionCase(queryLength: nq, keyLength: nk, queryHeads: hq, keyHeads: hkv,
                                                         headDim: d, causal: causal, inputScale: a, seed: UInt64(100 + index)))
                }
                index += 1
            }
        }
        // Four more random draws of the most common shape.
        for seed in 0..<4 {
            try checkHugeLogitCase(AttentionCase(queryLength: 128, keyLength: 128, queryHeads: 2, keyHeads: 1, headDim: 64,
                                                 causal: seed % 2 == 0, inputScale: 65, seed: UInt64(120 + seed)))
        }
    }

    private func checkHugeLogitCase(_ c: AttentionCase, file: StaticString = #filePath, line: UInt = #line) throws {
        let inputs = try AttentionInputs(c)
        let (q, k, v, dO) = (inputs.query.floats(), inputs.key.floats(), inputs.value.floats(), inputs.outputGradient.floats())
        let reference = inputs.reference.forward(query: inputs.q, key: inputs.k, value: inputs.v)
        let expected = inputs.reference.backward(query: inputs.q, key: inputs.k, value: inputs.v, outputGradient: inputs.dO)
        let largest = reference.lse.filter(\.isFinite).map(abs).max() ?? 0
        XCTAssertGreaterThan(largest, 300, "the case must have huge logits: \(c.descriptionText)", file: file, line: line)
        for implementation in AttentionImplementation.allCases {
            // The baseline rounds the logits as this implementation does (see TextbookFloat32Attention).
            var textbook = TextbookFloat32Attention(batch: c.batch, queryLength: c.queryLength, keyLength: c.keyLength,
                                                    queryHeads: c.queryHeads, keyHeads: c.keyHeads, headDim: c.headDim,
                                                    scale: 1 / Float(c.headDim).squareRoot(), causal: c.causal)
            textbook.scaleAfterDot = implementation == .standard
            let baselineOutput = textbook.forward(q: q, k: k, v: v)
            let baseline = textbook.backward(q: q, k: k, v: v, dO: dO)
            var descriptor = inputs.descriptor
            descriptor.implementation = implementation
            let result = try Attention.forward(query: inputs.query, key: inputs.key, value: inputs.value, descriptor: descriptor)
            let gradients = try Attention.backward(
                query: inputs.query, key: inputs.key, value: inputs.value, output: result.output, logSumExp: result.logSumExp,
                logSumExpResidual: result.logSumExpResidual, outputGradient: inputs.outputGradient, descriptor: descriptor)
            let checks: [(String, [Float], [Float], [Double])] = [
                ("O", result.output.floats(), baselineOutput, reference.output),
                ("dQ", gradients.query.floats(), baseline.query, expected.query),
                ("dK", gradients.key.floats(), baseline.key, expected.key),
                ("dV", gradients.value.floats(), baseline.value, expected.value),
            ]
            for (what, actual, float32, exact) in checks {
                let magnitude = exact.map(abs).max() ?? 1
                let error = maxError(actual, exact), baselineError = maxError(float32, exact)
                XCTAssertLessThanOrEqual(error, 2 * baselineError + 1e-5 * max(1, magnitude),
                                         "\(implementation) \(what) error \(error) vs textbook Float32 \(baselineError): \(c.descriptionText)",
                                         file: file, line: line)
            }
        }
    }
}
