import Estimates
import FlashCore
import XCTest

/// The attention IO model against (1) a tiled FlashAttention that counts its own main-memory
/// loads and stores, (2) closed forms of the paper's algorithms, (3) the paper's Figure 2.
final class AttentionIOTests: XCTestCase {
    /// Checks the model's bytes and matmul FLOPs against what `source` measured, forward and backward.
    func assertModelMatches(_ source: AttentionTrafficSource, _ problem: AttentionProblem, _ tiling: FlashTiling,
                            file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try AttentionIO.flash(problem, tiling: tiling)
        let measured = source.run(problem, tiling)
        let context = "\(problem) \(tiling)"
        XCTAssertEqual(model.forward.bytesRead, measured.forwardRead, context, file: file, line: line)
        XCTAssertEqual(model.forward.bytesWritten, measured.forwardWritten, context, file: file, line: line)
        XCTAssertEqual(model.backward.bytesRead, measured.backwardRead, context, file: file, line: line)
        XCTAssertEqual(model.backward.bytesWritten, measured.backwardWritten, context, file: file, line: line)
        XCTAssertEqual(model.forward.matmulFLOPs, measured.forwardMatmulFLOPs, context, file: file, line: line)
        XCTAssertEqual(model.backward.matmulFLOPs, measured.backwardMatmulFLOPs, context, file: file, line: line)
    }

    func testFlashModelCountsWhatATiledKernelMoves() throws {
        let shapes: [(nq: Int, nk: Int, d: Int, br: Int, bc: Int)] = [
            (16, 16, 4, 4, 8), (13, 13, 3, 4, 5), (7, 19, 2, 3, 4), (19, 7, 2, 4, 3), (9, 9, 5, 16, 16), (10, 10, 2, 1, 1),
        ]
        for shape in shapes {
            for causal in [false, true] {
                for schedule in FlashSchedule.allCases {
                    let problem = AttentionProblem(batch: 1, heads: 1, queryLength: shape.nq, keyLength: shape.nk,
                                                   headDim: shape.d, elementBytes: 4, causal: causal)
                    let tiling = FlashTiling(queryTile: shape.br, keyTile: shape.bc, schedule: schedule)
                    var simulation = TiledAttentionSimulation(queries: shape.nq, keys: shape.nk, headDim: shape.d, seed: 7)
                    try assertModelMatches(simulation, problem, tiling)
                    // The simulation is attention: its outputs and gradients match the reference.
                    _ = simulation.execute(problem, tiling)
                    let reference = simulation.reference(causal: causal)
                    for (got, want) in [(simulation.output, reference.o), (simulation.dQ, reference.dQ),
                                        (simulation.dK, reference.dK), (simulation.dV, reference.dV)] {
                        for (a, b) in zip(got.joined(), want.joined()) { XCTAssertEqual(a, b, accuracy: 1e-12, "\(shape) \(schedule)") }
                    }
                }
            }
        }
    }

    func testBatchAndHeadsMultiply() throws {
        let one = AttentionProblem(batch: 1, heads: 1, queryLength: 33, headDim: 8, causal: true)
        var many = one
        many.batch = 3
        many.heads = 5
        let tiling = FlashTiling(queryTile: 8, keyTile: 16)
        XCTAssertEqual(try AttentionIO.flash(many, tiling: tiling).total.bytes, 15 * (try AttentionIO.flash(one, tiling: tiling).total.bytes))
        XCTAssertEqual(try AttentionIO.standard(many).total.flops, 15 * (try AttentionIO.standard(one).total.flops))
    }

    /// Standard attention (paper Algorithms 0 and 3), e-byte elements: forward reads Q, K, S, P,
    /// V and writes S, P, O (4·N·d + 4·N² elements); backward 8·N·d + 7·N²; dropout adds a read
    /// and a write of N² plus a one-byte mask each way.
    func testStandardClosedForm() throws {
        let (n, d, e) = (100.0, 16.0, 2.0)
        let plain = try AttentionIO.standard(AttentionProblem(batch: 1, heads: 1, queryLength: 100, headDim: 16))
        XCTAssertEqual(plain.forward.bytes, (4 * n * d + 4 * n * n) * e)
        XCTAssertEqual(plain.backward.bytes, (8 * n * d + 7 * n * n) * e)
        XCTAssertEqual(plain.forward.matmulFLOPs, 4 * n * n * d)
        XCTAssertEqual(plain.backward.matmulFLOPs, 8 * n * n * d)
        let dropout = try AttentionIO.standard(AttentionProblem(batch: 1, heads: 1, queryLength: 100, headDim: 16, dropout: true))
        XCTAssertEqual(dropout.total.bytes - plain.total.bytes, 2 * (2 * n * n * e + n * n))
        let masked = try AttentionIO.standard(AttentionProblem(batch: 1, heads: 1, queryLength: 100, headDim: 16, causal: true),
                                              separateMaskPass: true)
        XCTAssertEqual(masked.total.bytes - plain.total.bytes, 4 * n * n * e)
    }

    /// Paper Algorithm 2 with Bc = ⌈M/4d⌉ dividing N: K, V read once, O, ℓ, m initialised, and
    /// Q, O, ℓ, m read and O, ℓ, m written once per K/V block: Θ(N²·d²/M) as M grows.
    func testFlashPaperScheduleClosedFormAndScaling() throws {
        let n = 4096, d = 64
        let problem = AttentionProblem(batch: 1, heads: 1, queryLength: n, headDim: d)
        let tiling = FlashTiling.paper(onChipBytes: 2 * 4 * d * 128, headDim: d, elementBytes: 2)   // M = 512·d elements
        XCTAssertEqual(tiling.keyTile, 128)
        XCTAssertEqual(tiling.queryTile, 64)
        let forward = try AttentionIO.flash(problem, tiling: tiling).forward
        let (nd, e, st, blocks) = (Double(n * d), 2.0, 4.0, Double(n / 128))
        XCTAssertEqual(forward.bytes, nd * e + 2 * Double(n) * st + 2 * nd * e + blocks * (3 * nd * e + 4 * Double(n) * st))
        // Doubling M halves the number of K/V blocks and so, for large N, nearly halves traffic.
        let bigger = try AttentionIO.flash(problem, tiling: .paper(onChipBytes: 4 * 4 * d * 128, headDim: d, elementBytes: 2))
        let ratio = (try AttentionIO.flash(problem, tiling: tiling)).total.bytes / bigger.total.bytes
        XCTAssertEqual(ratio, 2, accuracy: 0.2)
        // Standard attention's traffic does not depend on M, and is larger here.
        XCTAssertGreaterThan(try AttentionIO.standard(problem).total.bytes, 5 * bigger.total.bytes)
        // With almost no on-chip memory (one key per block), tiling loses to the standard algorithm.
        let tiny = try AttentionIO.flash(problem, tiling: FlashTiling(queryTile: 1, keyTile: 1, schedule: .paper))
        XCTAssertGreaterThan(tiny.total.bytes, try AttentionIO.standard(problem).total.bytes)
    }

    /// The FlashAttention paper's Figure 2 (GPT-2 medium on an A100): flash does more FLOPs,
    /// moves about 9× fewer bytes, and is faster. Matmul FLOPs are Tri Dao's corrected figures
    /// (flash-attention issue #741): 825 GFLOPs standard, 963 flash.
    func testPaperFigure2Ratios() throws {
        let problem = AttentionProblem.gpt2Medium
        let tiling = FlashTiling.paper(onChipBytes: Hardware.a100.onChipBytes, headDim: 64, elementBytes: 2)
        let standard = try AttentionIO.standard(problem), flash = try AttentionIO.flash(problem, tiling: tiling)
        XCTAssertEqual(standard.total.matmulFLOPs, 3 * 4 * 1024 * 1024 * 64 * 64 * 16)
        XCTAssertEqual(standard.total.matmulFLOPs / 1e9, 825, accuracy: 1)
        XCTAssertEqual(flash.total.matmulFLOPs / 1e9, 963, accuracy: 1.5)
        let flopRatio = flash.total.flops / standard.total.flops
        XCTAssertGreaterThan(flopRatio, 1.1)
        XCTAssertLessThan(flopRatio, 1.2)                           // paper 1.129
        XCTAssertEqual(standard.total.bytes / 1e9, 40.3, accuracy: 0.15 * 40.3)
        XCTAssertEqual(flash.total.bytes / 1e9, 4.4, accuracy: 0.1 * 4.4)
        let trafficRatio = standard.total.bytes / flash.total.bytes
        XCTAssertGreaterThan(trafficRatio, 7)
        XCTAssertLessThan(trafficRatio, 11)                         // paper 9.2
        let speedup = standard.total.seconds(on: .a100) / flash.total.seconds(on: .a100)
        XCTAssertGreaterThan(speedup, 4)                            // paper 5.7
        // Standard is memory-bound, flash compute-bound on an A100.
        XCTAssertGreaterThan(standard.total.memorySeconds(on: .a100), standard.total.computeSeconds(on: .a100))
        XCTAssertGreaterThan(flash.total.computeSeconds(on: .a100), flash.total.memorySeconds(on: .a100))
    }

    func testBadSizesNameTheField() {
        XCTAssertThrowsError(try AttentionIO.standard(AttentionProblem(batch: 1, heads: 0, queryLength: 8, headDim: 4))) {
            XCTAssertEqual(($0 as? InvalidArgument)?.argument, "heads")
        }
        XCTAssertThrowsError(try AttentionIO.flash(AttentionProblem(batch: 1, heads: 1, queryLength: 8, headDim: 4),
                                                   tiling: FlashTiling(queryTile: 0, keyTile: 4))) {
            XCTAssertEqual(($0 as? InvalidArgument)?.argument, "queryTile")
        }
    }
}
