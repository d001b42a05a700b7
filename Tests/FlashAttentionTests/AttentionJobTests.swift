import XCTest
import Foundation
import FlashCore
import FlashAttention
import ModelFormats

/// The logic behind `flash attention`: argument checking, and a round trip through a
/// safetensors file as the command does it.
final class AttentionJobTests: XCTestCase {
    static func random(_ shape: [Int], seed: UInt64) throws -> Tensor {
        var state = seed
        let values = (0..<shape.reduce(1, *)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
        return try Tensor(shape: shape, values: values)
    }

    static func inputs(b: Int = 1, nq: Int = 5, nk: Int = 7, hq: Int = 2, hkv: Int = 1, d: Int = 4) throws -> [String: Tensor] {
        ["q": try random([b, nq, hq, d], seed: 1), "k": try random([b, nk, hkv, d], seed: 2),
         "v": try random([b, nk, hkv, d], seed: 3), "dout": try random([b, nq, hq, d], seed: 4)]
    }

    func assertInvalid(_ tensors: [String: Tensor], _ options: AttentionJob.Options = .init(), argument: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try AttentionJob.run(tensors: tensors, options: options), file: file, line: line) { error in
            XCTAssertEqual((error as? InvalidArgument)?.argument, argument, "\(error)", file: file, line: line)
        }
    }

    func testRoundTripThroughAFileMatchesDirectCall() throws {
        var tensors = try Self.inputs()
        tensors["alibi_slopes"] = try Tensor(shape: [2], values: [0.5, 0.25])
        var options = AttentionJob.Options()
        options.causal = true
        options.backward = true
        let data = try Safetensors.serialize(tensors)
        let results = try AttentionJob.run(tensors: try Safetensors.read(data).tensors, options: options)
        XCTAssertEqual(Set(results.keys), ["o", "lse", "dq", "dk", "dv"])
        XCTAssertEqual(results["lse"]?.shape, [1, 2, 5])
        let written = try Safetensors.read(try Safetensors.serialize(results)).tensors
        let direct = try Attention.forward(query: tensors["q"]!, key: tensors["k"]!, value: tensors["v"]!,
                                           descriptor: AttentionDescriptor(causal: true, alibiSlopes: [0.5, 0.25]))
        XCTAssertEqual(written["o"]?.floats(), direct.output.floats())
        XCTAssertEqual(written["lse"]?.floats(), direct.logSumExp.floats())
    }

    func testMissingAndMisshapenTensorsAreNamed() throws {
        let good = try Self.inputs()
        var missing = good
        missing["k"] = nil
        assertInvalid(missing, argument: "tensor 'k'")
        var noGradient = good
        noGradient["dout"] = nil
        var backward = AttentionJob.Options()
        backward.backward = true
        assertInvalid(noGradient, backward, argument: "tensor 'dout'")
        var rank3 = good
        rank3["q"] = try Self.random([5, 2, 4], seed: 5)
        assertInvalid(rank3, argument: "q.shape")
        var badDim = good
        badDim["k"] = try Self.random([1, 7, 1, 3], seed: 5)
        assertInvalid(badDim, argument: "k.shape[3]")
        var badHeads = try Self.inputs(hq: 3, hkv: 2)
        assertInvalid(badHeads, argument: "k.shape[2]")
        badHeads = good
        badHeads["v"] = try Self.random([1, 6, 1, 4], seed: 5)
        assertInvalid(badHeads, argument: "v.shape")
        var badBias = good
        badBias["bias"] = try Self.random([7, 5], seed: 5)
        assertInvalid(badBias, argument: "bias.shape")
        var badSlopes = good
        badSlopes["alibi_slopes"] = try Self.random([1], seed: 5)
        assertInvalid(badSlopes, argument: "alibi_slopes.shape")
        var badLengths = good
        badLengths["key_lengths"] = try Tensor(shape: [1], values: [8])
        assertInvalid(badLengths, argument: "key_lengths[0]")
        var notANumber = good
        notANumber["v"] = try Tensor(shape: [1, 7, 1, 4], values: [Float](repeating: .nan, count: 28))
        assertInvalid(notANumber, argument: "tensor 'v'")
    }

    func testFlagValidation() throws {
        var options = AttentionJob.Options()
        try options.setWindow("128,-1")
        XCTAssertEqual(options.windowLeft, 128)
        XCTAssertNil(options.windowRight)
        try options.setWindow(" -1 , 0")
        XCTAssertNil(options.windowLeft)
        XCTAssertEqual(options.windowRight, 0)
        for bad in ["128", "1,2,3", "a,b", "-2,0", ""] {
            XCTAssertThrowsError(try options.setWindow(bad)) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "--window") }
        }
        let tensors = try Self.inputs()
        var softcap = AttentionJob.Options()
        softcap.softcap = 0
        assertInvalid(tensors, softcap, argument: "--softcap")
        var dropout = AttentionJob.Options()
        dropout.dropoutProbability = 1
        assertInvalid(tensors, dropout, argument: "--dropout")
        var threads = AttentionJob.Options()
        threads.threads = 0
        assertInvalid(tensors, threads, argument: "--threads")
    }
}
