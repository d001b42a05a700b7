import XCTest
import FlashAttention

/// Validates the Float64 reference's backward by central finite differences of its forward,
/// with every option that shapes the gradient switched on.
final class AttentionReferenceTests: XCTestCase {
    func testReferenceGradientsMatchFiniteDifferences() throws {
        let c = AttentionCase(batch: 1, queryLength: 5, keyLength: 7, queryHeads: 2, keyHeads: 1, headDim: 4,
                              causal: true, windowLeft: 4, softcap: 2, alibi: true, biasShape: [1, 2, 5, 7],
                              keepMaskShape: [1, 1, 5, 7], dropout: 0.3, inputScale: 2, seed: 3)
        let inputs = try AttentionInputs(c)
        let reference = inputs.reference
        func loss(_ q: [Double], _ k: [Double], _ v: [Double]) -> Double {
            zip(reference.forward(query: q, key: k, value: v).output, inputs.dO).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let analytic = reference.backward(query: inputs.q, key: inputs.k, value: inputs.v, outputGradient: inputs.dO)
        let h = 1e-6
        var checked = 0
        for which in 0..<3 {
            let base = [inputs.q, inputs.k, inputs.v][which]
            let expected = [analytic.query, analytic.key, analytic.value][which]
            for index in base.indices {
                var plus = base, minus = base
                plus[index] += h
                minus[index] -= h
                let args = { (x: [Double]) in which == 0 ? loss(x, inputs.k, inputs.v) : which == 1 ? loss(inputs.q, x, inputs.v) : loss(inputs.q, inputs.k, x) }
                let numeric = (args(plus) - args(minus)) / (2 * h)
                XCTAssertEqual(numeric, expected[index], accuracy: 1e-6 * max(1, abs(numeric)), "tensor \(which) element \(index)")
                if expected[index] != 0 { checked += 1 }
            }
        }
        XCTAssertGreaterThan(checked, 40, "the case should have many non-zero gradients")
    }

    func testDropoutMaskIsCoordinateFunctionWithExpectedRate() {
        var kept = 0
        for i in 0..<100 { for j in 0..<100 {
            if AttentionDropout.keeps(seed: 4, batch: 1, head: 2, query: i, key: j, probability: 0.25) { kept += 1 }
        }}
        XCTAssertEqual(Double(kept) / 10_000, 0.75, accuracy: 0.02)
        XCTAssertEqual(AttentionDropout.keeps(seed: 4, batch: 1, head: 2, query: 3, key: 5, probability: 0.25),
                       AttentionDropout.keeps(seed: 4, batch: 1, head: 2, query: 3, key: 5, probability: 0.25))
        XCTAssertTrue(AttentionDropout.keeps(seed: 4, batch: 0, head: 0, query: 0, key: 0, probability: 0))
    }
}
