import XCTest
import FlashCore
import FlashAttention

/// Every bad input throws `InvalidArgument` naming the argument (or the memory error).
final class AttentionValidationTests: XCTestCase {
    func tensor(_ shape: [Int], _ type: ElementType = .float32) throws -> Tensor { try Tensor(zeros: shape, elementType: type) }

    func assertInvalid(_ argument: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let invalid = error as? InvalidArgument else { return XCTFail("\(error) is not InvalidArgument", file: file, line: line) }
            XCTAssertEqual(invalid.argument, argument, "\(invalid)", file: file, line: line)
        }
    }

    func forward(q: [Int] = [2, 5, 4, 8], k: [Int] = [2, 6, 2, 8], v: [Int]? = nil, _ descriptor: AttentionDescriptor = .init()) throws {
        _ = try Attention.forward(query: tensor(q), key: tensor(k), value: tensor(v ?? k), descriptor: descriptor)
    }

    func testShapes() throws {
        assertInvalid("query.rank") { try forward(q: [2, 5, 8]) }
        assertInvalid("key.rank") { try forward(k: [2, 6, 16]) }
        assertInvalid("key.shape[3]") { try forward(k: [2, 6, 2, 16], v: [2, 6, 2, 16]) }
        assertInvalid("value.shape") { try forward(v: [2, 6, 2, 4]) }
        assertInvalid("value.shape") { try forward(v: [2, 7, 2, 8]) }
        assertInvalid("query.shape[2]") { try forward(q: [2, 5, 3, 8]) }
        assertInvalid("key.shape[0]") { try forward(k: [3, 6, 2, 8]) }
        assertInvalid("query.shape[3]") { try forward(q: [2, 5, 4, 0], k: [2, 6, 2, 0]) }
        assertInvalid("query.shape[2]") { try forward(q: [2, 5, 0, 8]) }
        assertInvalid("key.shape[2]") { try forward(k: [2, 6, 0, 8]) }
        assertInvalid("output.shape") {
            _ = try Attention.forward(query: tensor([2, 5, 4, 8]), key: tensor([2, 6, 2, 8]), value: tensor([2, 6, 2, 8]),
                                      output: tensor([2, 5, 4, 4]))
        }
        assertInvalid("output.elementType") {
            _ = try Attention.forward(query: tensor([2, 5, 4, 8]), key: tensor([2, 6, 2, 8]), value: tensor([2, 6, 2, 8]),
                                      output: tensor([2, 5, 4, 8], .float16))
        }
    }

    func testOptions() throws {
        assertInvalid("descriptor.windowLeft") { try forward(AttentionDescriptor(windowLeft: -1)) }
        assertInvalid("descriptor.windowRight") { try forward(AttentionDescriptor(windowRight: -2)) }
        assertInvalid("descriptor.softcap") { try forward(AttentionDescriptor(softcap: 0)) }
        assertInvalid("descriptor.softcap") { try forward(AttentionDescriptor(softcap: -1)) }
        assertInvalid("descriptor.alibiSlopes.count") { try forward(AttentionDescriptor(alibiSlopes: [1, 2])) }
        assertInvalid("descriptor.dropoutProbability") { try forward(AttentionDescriptor(dropoutProbability: 1)) }
        assertInvalid("descriptor.dropoutProbability") { try forward(AttentionDescriptor(dropoutProbability: -0.1)) }
        assertInvalid("descriptor.keyLengths.count") { try forward(AttentionDescriptor(keyLengths: [6])) }
        assertInvalid("descriptor.keyLengths[1]") { try forward(AttentionDescriptor(keyLengths: [6, 7])) }
        assertInvalid("descriptor.keyLengths[0]") { try forward(AttentionDescriptor(keyLengths: [-1, 2])) }
        assertInvalid("descriptor.threads") { try forward(AttentionDescriptor(threads: 0)) }
        assertInvalid("descriptor.scale") { try forward(AttentionDescriptor(scale: .nan)) }
        assertInvalid("descriptor.bias.shape") { try forward(AttentionDescriptor(bias: try tensor([3, 4, 5, 6]))) }
        assertInvalid("descriptor.bias.shape") { try forward(AttentionDescriptor(bias: try tensor([2, 4, 5, 7]))) }
        assertInvalid("descriptor.bias.rank") { try forward(AttentionDescriptor(bias: try tensor([1, 2, 4, 5, 6]))) }
        assertInvalid("descriptor.keepMask.shape") { try forward(AttentionDescriptor(keepMask: try tensor([2, 3, 5, 6]))) }
        XCTAssertNoThrow(try forward(AttentionDescriptor(bias: try tensor([2, 1, 1, 6]), keepMask: try tensor([5, 6]))))
    }

    func testBackwardShapes() throws {
        let (q, k) = (try tensor([2, 5, 4, 8]), try tensor([2, 6, 2, 8]))
        assertInvalid("logSumExp.shape") {
            _ = try Attention.backward(query: q, key: k, value: k, output: q, logSumExp: tensor([2, 5, 4]), outputGradient: q)
        }
        assertInvalid("outputGradient.shape") {
            _ = try Attention.backward(query: q, key: k, value: k, output: q, logSumExp: tensor([2, 4, 5]), outputGradient: k)
        }
        assertInvalid("output.shape") {
            _ = try Attention.backward(query: q, key: k, value: k, output: k, logSumExp: tensor([2, 4, 5]), outputGradient: q)
        }
        assertInvalid("gradients.key.shape") {
            try Attention.backward(query: q, key: k, value: k, output: q, logSumExp: tensor([2, 4, 5]), outputGradient: q,
                                   into: AttentionGradients(query: q, key: q, value: k))
        }
        assertInvalid("gradients.query.elementType") {
            try Attention.backward(query: q, key: k, value: k, output: q, logSumExp: tensor([2, 4, 5]), outputGradient: q,
                                   into: AttentionGradients(query: tensor([2, 5, 4, 8], .bfloat16), key: k, value: k))
        }
    }

    func testVariableLengthArguments() throws {
        let (q, k) = (try tensor([10, 4, 8]), try tensor([12, 2, 8]))
        func run(_ cuQ: [Int], _ cuK: [Int], _ descriptor: AttentionDescriptor = .init()) throws {
            _ = try Attention.forwardVariableLength(query: q, key: k, value: k, cumulativeQueryLengths: cuQ,
                                                    cumulativeKeyLengths: cuK, descriptor: descriptor)
        }
        XCTAssertNoThrow(try run([0, 4, 10], [0, 5, 12]))
        assertInvalid("cumulativeQueryLengths[0]") { try run([1, 4, 10], [0, 5, 12]) }
        assertInvalid("cumulativeQueryLengths[2]") { try run([0, 4, 3, 10], [0, 5, 6, 12]) }
        assertInvalid("cumulativeKeyLengths.last") { try run([0, 4, 10], [0, 5, 11]) }
        assertInvalid("cumulativeKeyLengths.count") { try run([0, 4, 10], [0, 12]) }
        assertInvalid("descriptor.keyLengths") { try run([0, 10], [0, 12], AttentionDescriptor(keyLengths: [3])) }
        assertInvalid("descriptor.bias") { try run([0, 10], [0, 12], AttentionDescriptor(bias: try self.tensor([10, 12]))) }
        assertInvalid("query.rank") {
            _ = try Attention.forwardVariableLength(query: self.tensor([1, 10, 4, 8]), key: k, value: k,
                                                    cumulativeQueryLengths: [0, 10], cumulativeKeyLengths: [0, 12])
        }
    }

    func testStandardRefusesBeyondMemoryLimit() throws {
        let saved = Attention.standardMemoryLimitBytes
        defer { Attention.standardMemoryLimitBytes = saved }
        Attention.standardMemoryLimitBytes = 1000
        let q = try tensor([1, 64, 2, 8])
        XCTAssertThrowsError(try Attention.forward(query: q, key: q, value: q, descriptor: AttentionDescriptor(implementation: .standard))) {
            XCTAssertEqual($0 as? AttentionError, .standardMemoryExceeded(neededBytes: 2 * 64 * 64 * 4, limitBytes: 1000))
            XCTAssertTrue("\($0)".contains("32768 bytes"))
        }
        // The flash implementation has no such limit.
        XCTAssertNoThrow(try Attention.forward(query: q, key: q, value: q))
    }
}
