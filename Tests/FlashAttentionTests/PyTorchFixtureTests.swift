import XCTest
import Foundation
import FlashCore
import FlashAttention
import ModelFormats

/// Compares both attention implementations with PyTorch on the fixtures written by
/// `scripts/make_attention_fixtures.py` (float64 reference from the stored float32 inputs).
///
/// Tolerance: the kernels compute in Float32 (unit roundoff u = 6e-8). Each output element is a
/// sum over ≤ 200 keys of products of dot products over ≤ 128 dimensions; the classical bound on
/// such sums is ~n·u relative to the sum of magnitudes (≈ 1e-5 at n = 200), and typical errors are
/// ~√n·u. So we allow 3e-5 relative to the largest reference magnitude (at least 1) for o and lse,
/// and 1e-4 for the gradients, whose extra reductions (dS·K, dSᵀ·Q, Pᵀ·dO over all queries and
/// grouped heads) add another sum of the same length. A wrong mask, scale or softmax term moves
/// results by ≥ 1e-2, far outside both.
final class PyTorchFixtureTests: XCTestCase {
    static func fixture(_ name: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let directory = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return try Safetensors.read(path: directory.appendingPathComponent("\(name).safetensors").path)
    }

    /// The command-line options a fixture's metadata records.
    static func options(_ metadata: [String: String]) throws -> AttentionJob.Options {
        var options = AttentionJob.Options()
        options.causal = metadata["causal"] == "true"
        if let window = metadata["window"] { try options.setWindow(window) }
        options.softcap = metadata["softcap"].flatMap { Float($0) }
        options.scale = metadata["scale"].flatMap { Float($0) }
        options.backward = true
        return options
    }

    static func maxAbs(_ values: [Float]) -> Float { values.lazy.filter(\.isFinite).map(abs).max() ?? 0 }

    func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (tensors, metadata) = try Self.fixture(name)
        let inputs = tensors.filter { AttentionJob.inputNames.contains($0.key) }
        for implementation in AttentionImplementation.allCases {
            var options = try Self.options(metadata)
            options.implementation = implementation
            let results = try AttentionJob.run(tensors: inputs, options: options)
            for (output, tolerance) in [("o", Float(3e-5)), ("lse", 3e-5), ("dq", 1e-4), ("dk", 1e-4), ("dv", 1e-4)] {
                let expected = try XCTUnwrap(tensors[output], file: file, line: line)
                let got = try XCTUnwrap(results[output], file: file, line: line)
                XCTAssertEqual(got.shape, expected.shape, "\(name) \(implementation) \(output) shape", file: file, line: line)
                let want = expected.floats(), have = got.floats()
                let bound = tolerance * max(1, Self.maxAbs(want))
                var worst: Float = 0, worstIndex = 0
                for index in want.indices {
                    if want[index] == -.infinity || have[index] == -.infinity {
                        XCTAssertEqual(have[index], want[index], "\(name) \(implementation) \(output)[\(index)]", file: file, line: line)
                        continue
                    }
                    let error = abs(have[index] - want[index])
                    if !(error <= worst) { worst = error; worstIndex = index }
                }
                XCTAssertLessThanOrEqual(worst, bound,
                                         "\(name) (\(metadata["description"] ?? "")) \(implementation) \(output): worst error at flat index \(worstIndex): got \(have[worstIndex]), want \(want[worstIndex])",
                                         file: file, line: line)
            }
        }
    }

    func testBasic() throws { try check("basic") }
    func testCausalSquare() throws { try check("causal_square") }
    func testCausalFewerQueriesIsBottomRight() throws { try check("causal_fewer_queries") }
    func testCausalMoreQueriesHasEmptyRows() throws { try check("causal_more_queries") }
    func testGroupedQuery() throws { try check("gqa_causal") }
    func testMultiQuery() throws { try check("mqa") }
    func testExplicitScale() throws { try check("scale") }
    func testLongerThanATile() throws { try check("long_causal") }
    func testHeadDim128() throws { try check("head_dim_128") }
    // The variants below need the attention kernels (branch `attention`): the provisional
    // kernel this branch started from ignores bias, masks, softcap, ALiBi, windows and key lengths.
    func testAdditiveBias() throws { try check("bias") }
    func testKeepMask() throws { try check("mask") }
    func testSoftcap() throws { try check("softcap") }
    func testALiBi() throws { try check("alibi_causal") }
    func testSlidingWindow() throws { try check("window") }
    func testSlidingWindowCausal() throws { try check("window_causal") }
    func testKeyLengths() throws { try check("key_lengths") }
}
