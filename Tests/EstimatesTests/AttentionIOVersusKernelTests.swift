import Estimates
import FlashAttention
import FlashCore
import XCTest

/// The IO model against the bytes the project's own flash kernel counts in its tile loops
/// (`Attention.forwardCountingTraffic`), with the kernel's own tile table (`FlashTiling.cpuKernel`):
/// equal to the byte, non-causal and causal, head dims on and off the tile table's rows, sequence
/// lengths that are not multiples of the tiles. (The backward kernel shares K/V reads across a
/// GQA group and packs Q/dO first, a schedule the model does not describe yet.)
final class AttentionIOVersusKernelTests: XCTestCase {
    func testForwardModelEqualsKernelCounts() throws {
        var rng = SplitMix(seed: 11)
        for (n, d, causal) in [(256, 64, false), (256, 64, true), (200, 32, true), (130, 128, false), (300, 80, true)] {
            let shape = [1, n, 2, d]
            func random() throws -> Tensor { try Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float(rng.double() * 2 - 1) }) }
            let (q, k, v) = (try random(), try random(), try random())
            let (_, traffic) = try Attention.forwardCountingTraffic(
                query: q, key: k, value: v, descriptor: AttentionDescriptor(causal: causal, implementation: .flash))
            // Per row the kernel writes the Float32 LSE and its residual (8 bytes of statistics).
            let problem = AttentionProblem(batch: 1, heads: 2, queryLength: n, keyLength: n, headDim: d, elementBytes: 4,
                                           statisticBytes: 8, causal: causal)
            let model = try AttentionIO.flash(problem, tiling: .cpuKernel(headDim: d))
            let read = Double(traffic.bytesRead.values.reduce(0, +)), written = Double(traffic.bytesWritten.values.reduce(0, +))
            XCTAssertEqual(model.forward.bytesRead, read, "n=\(n) d=\(d) causal=\(causal)")
            XCTAssertEqual(model.forward.bytesWritten, written, "n=\(n) d=\(d) causal=\(causal)")
        }
    }
}
