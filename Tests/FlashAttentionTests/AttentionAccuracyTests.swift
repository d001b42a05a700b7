import XCTest
import FlashCore
import FlashAttention

/// Flash and standard against the Float64 reference over a covering subset of the grid
/// (lengths {1, 2, 17, 64, 127, 128, 129, 1000}, head dims {16, 32, 64, 80, 128, 256},
/// group ratios {1, 2, 4, 8}, every option alone and combined).
final class AttentionAccuracyTests: XCTestCase {
    func testSequenceLengths() throws {
        let pairs = [(1, 1), (2, 17), (17, 2), (64, 64), (127, 129), (128, 128), (129, 127), (1, 129), (17, 1000)]
        for (index, (nq, nk)) in pairs.enumerated() {
            for causal in [false, true] {
                try checkCase(AttentionCase(queryLength: nq, keyLength: nk, queryHeads: 2, keyHeads: 2, headDim: 32,
                                            causal: causal, seed: UInt64(index)))
            }
        }
    }

    func testLongSequence() throws {
        try checkCase(AttentionCase(queryLength: 1000, keyLength: 1000, queryHeads: 1, keyHeads: 1, headDim: 16, causal: true))
    }

    func testHeadDimensions() throws {
        for (index, d) in [16, 32, 64, 80, 128, 256].enumerated() {
            try checkCase(AttentionCase(queryLength: 70, keyLength: 131, queryHeads: 2, keyHeads: 1, headDim: d,
                                        causal: index % 2 == 0, inputScale: 2, seed: UInt64(10 + index)))
        }
    }

    func testLargeLogits() throws {
        // Logits in the hundreds: the online softmax must rescale across tiles without overflow.
        try checkCase(AttentionCase(queryLength: 300, keyLength: 300, queryHeads: 2, keyHeads: 1, headDim: 64,
                                    causal: true, inputScale: 8, seed: 15))
        try checkCase(AttentionCase(queryLength: 40, keyLength: 700, queryHeads: 1, keyHeads: 1, headDim: 256,
                                    alibi: true, inputScale: 6, seed: 16))
    }

    func testGroupedQueryHeads() throws {
        for (index, (hq, hkv)) in [(8, 8), (8, 4), (8, 2), (8, 1), (3, 1)].enumerated() {
            try checkCase(AttentionCase(batch: 2, queryLength: 33, keyLength: 70, queryHeads: hq, keyHeads: hkv, headDim: 16,
                                        causal: index % 2 == 1, seed: UInt64(20 + index)))
        }
    }

    func testWindows() throws {
        let windows: [(Int?, Int?, Bool)] = [(5, 3, false), (0, 0, false), (7, nil, true), (nil, 4, false), (20, 0, false), (3, 2, true)]
        for (index, (left, right, causal)) in windows.enumerated() {
            for (nq, nk) in [(129, 129), (40, 150), (150, 40)] {
                try checkCase(AttentionCase(queryLength: nq, keyLength: nk, queryHeads: 2, keyHeads: 1, headDim: 16,
                                            causal: causal, windowLeft: left, windowRight: right, seed: UInt64(30 + index)))
            }
        }
    }

    func testSoftcapAlibiBias() throws {
        try checkCase(AttentionCase(queryLength: 65, keyLength: 130, queryHeads: 2, keyHeads: 2, headDim: 32,
                                    softcap: 3, inputScale: 3, seed: 40))
        try checkCase(AttentionCase(queryLength: 65, keyLength: 130, queryHeads: 4, keyHeads: 2, headDim: 32,
                                    causal: true, alibi: true, seed: 41))
        try checkCase(AttentionCase(batch: 2, queryLength: 30, keyLength: 140, queryHeads: 2, keyHeads: 1, headDim: 16,
                                    biasShape: [1, 2, 30, 140], seed: 42))
        try checkCase(AttentionCase(batch: 2, queryLength: 30, keyLength: 140, queryHeads: 2, keyHeads: 1, headDim: 16,
                                    biasShape: [2, 1, 1, 140], seed: 43))
        try checkCase(AttentionCase(batch: 2, queryLength: 30, keyLength: 40, queryHeads: 2, keyHeads: 1, headDim: 16,
                                    biasShape: [30, 40], seed: 44))
    }

    func testKeepMaskAndKeyLengths() throws {
        try checkCase(AttentionCase(batch: 2, queryLength: 70, keyLength: 140, queryHeads: 2, keyHeads: 2, headDim: 16,
                                    keepMaskShape: [2, 2, 70, 140], seed: 50))
        try checkCase(AttentionCase(batch: 2, queryLength: 70, keyLength: 140, queryHeads: 2, keyHeads: 2, headDim: 16,
                                    keepMaskShape: [2, 1, 1, 140], seed: 51))
        try checkCase(AttentionCase(batch: 3, queryLength: 70, keyLength: 140, queryHeads: 2, keyHeads: 1, headDim: 16,
                                    causal: true, keyLengths: [140, 0, 77], seed: 52))
    }

    func testDropout() throws {
        try checkCase(AttentionCase(batch: 2, queryLength: 70, keyLength: 140, queryHeads: 2, keyHeads: 1, headDim: 32,
                                    dropout: 0.2, seed: 60))
        try checkCase(AttentionCase(queryLength: 129, keyLength: 129, queryHeads: 2, keyHeads: 2, headDim: 16,
                                    causal: true, dropout: 0.5, seed: 61))
    }

    func testAllOptionsCombined() throws {
        try checkCase(AttentionCase(batch: 2, queryLength: 100, keyLength: 170, queryHeads: 4, keyHeads: 2, headDim: 80,
                                    causal: true, windowLeft: 90, windowRight: nil, softcap: 5, alibi: true,
                                    biasShape: [2, 1, 100, 170], keepMaskShape: [1, 4, 100, 170], keyLengths: [170, 120],
                                    dropout: 0.1, inputScale: 2, seed: 70))
    }

    func testHalfPrecisionInputs() throws {
        for (index, type) in [ElementType.float16, .bfloat16].enumerated() {
            try checkCase(AttentionCase(queryLength: 70, keyLength: 130, queryHeads: 4, keyHeads: 2, headDim: 64,
                                        causal: true, softcap: 4, elementType: type, seed: UInt64(80 + index)))
        }
    }

    func testFullyMaskedRowsGiveZeroOutputAndGradient() throws {
        // Causal with Nq > Nk: the first Nq − Nk queries see no key (bottom-right alignment).
        let c = AttentionCase(queryLength: 40, keyLength: 10, queryHeads: 2, keyHeads: 2, headDim: 16, causal: true, seed: 90)
        try checkCase(c)
        let inputs = try AttentionInputs(c)
        for implementation in AttentionImplementation.allCases {
            var descriptor = inputs.descriptor
            descriptor.implementation = implementation
            let result = try Attention.forward(query: inputs.query, key: inputs.key, value: inputs.value, descriptor: descriptor)
            XCTAssertEqual(result.logSumExp[0, 0, 0], -.infinity)
            XCTAssertEqual(result.output[0, 0, 0, 0], 0)
            XCTAssertTrue(result.logSumExp[0, 0, 30].isFinite)
            let gradients = try Attention.backward(query: inputs.query, key: inputs.key, value: inputs.value,
                                                   output: result.output, logSumExp: result.logSumExp,
                                                   outputGradient: inputs.outputGradient, descriptor: descriptor)
            XCTAssertEqual(gradients.query[0, 5, 1, 3], 0)
            XCTAssertFalse(gradients.key.floats().contains { $0.isNaN })
        }
    }
}
