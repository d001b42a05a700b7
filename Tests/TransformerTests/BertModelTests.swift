import XCTest
import Foundation
import FlashCore
import Transformer

/// A tiny random BERT against a plain Float64 implementation of the same architecture written
/// here (embeddings + LN, post-LN blocks with exact-erf GELU, bidirectional attention).
final class BertModelTests: XCTestCase {
    static let configuration = try! BertConfiguration(vocabularySize: 11, hiddenSize: 8, layerCount: 2, headCount: 2,
                                                      intermediateSize: 12, maxPositions: 6, tokenTypeCount: 2, layerNormEpsilon: 1e-5)

    /// Hugging Face-named random weights (a fixed-seed generator, values in ±0.5; layer-norm
    /// gains near 1).
    static func randomTensors(prefix: String = "") -> [String: Tensor] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24) - 0.5
        }
        let c = configuration
        let (h, i) = (c.hiddenSize, c.intermediateSize)
        var shapes: [(String, [Int])] = [("embeddings.word_embeddings.weight", [c.vocabularySize, h]),
                                         ("embeddings.position_embeddings.weight", [c.maxPositions, h]),
                                         ("embeddings.token_type_embeddings.weight", [c.tokenTypeCount, h]),
                                         ("embeddings.LayerNorm.weight", [h]), ("embeddings.LayerNorm.bias", [h])]
        for l in 0..<c.layerCount {
            let p = "encoder.layer.\(l)."
            for name in ["query", "key", "value"] {
                shapes += [(p + "attention.self.\(name).weight", [h, h]), (p + "attention.self.\(name).bias", [h])]
            }
            shapes += [(p + "attention.output.dense.weight", [h, h]), (p + "attention.output.dense.bias", [h]),
                       (p + "attention.output.LayerNorm.weight", [h]), (p + "attention.output.LayerNorm.bias", [h]),
                       (p + "intermediate.dense.weight", [i, h]), (p + "intermediate.dense.bias", [i]),
                       (p + "output.dense.weight", [h, i]), (p + "output.dense.bias", [h]),
                       (p + "output.LayerNorm.weight", [h]), (p + "output.LayerNorm.bias", [h])]
        }
        var tensors: [String: Tensor] = [:]
        for (name, shape) in shapes {
            let count = shape.reduce(1, *)
            let gain: Float = name.hasSuffix("LayerNorm.weight") ? 1 : 0
            tensors[prefix + name] = try! Tensor(shape: shape, values: (0..<count).map { _ in gain + random() * (name.contains("embeddings") ? 2 : 1) })
        }
        return tensors
    }

    /// The reference: hidden states of one sequence, [length][hidden], in Float64.
    static func reference(_ ids: [Int], _ w: [String: Tensor]) -> [[Double]] {
        let c = configuration
        let (h, d) = (c.hiddenSize, c.headDimension)
        func vector(_ name: String) -> [Double] { w[name]!.floats().map(Double.init) }
        func matrix(_ name: String) -> [[Double]] {
            let t = w[name]!
            return (0..<t.shape[0]).map { r in (0..<t.shape[1]).map { Double(t[r, $0]) } }
        }
        func linear(_ x: [[Double]], _ name: String) -> [[Double]] {
            let (weight, bias) = (matrix(name + ".weight"), vector(name + ".bias"))
            return x.map { row in weight.indices.map { o in zip(weight[o], row).reduce(bias[o]) { $0 + $1.0 * $1.1 } } }
        }
        func layerNorm(_ x: [[Double]], _ name: String) -> [[Double]] {
            let (g, b) = (vector(name + ".weight"), vector(name + ".bias"))
            return x.map { row in
                let mean = row.reduce(0, +) / Double(row.count)
                let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(row.count)
                return row.indices.map { (row[$0] - mean) / (variance + Double(c.layerNormEpsilon)).squareRoot() * g[$0] + b[$0] }
            }
        }
        func add(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] { zip(a, b).map { zip($0, $1).map { $0 + $1 } } }
        let words = matrix("embeddings.word_embeddings.weight"), positions = matrix("embeddings.position_embeddings.weight")
        let type0 = matrix("embeddings.token_type_embeddings.weight")[0]
        var x = layerNorm(ids.enumerated().map { t, id in (0..<h).map { words[id][$0] + positions[t][$0] + type0[$0] } }, "embeddings.LayerNorm")
        for l in 0..<c.layerCount {
            let p = "encoder.layer.\(l)."
            let (q, k, v) = (linear(x, p + "attention.self.query"), linear(x, p + "attention.self.key"), linear(x, p + "attention.self.value"))
            var context = [[Double]](repeating: [Double](repeating: 0, count: h), count: ids.count)
            for head in 0..<c.headCount {
                let columns = (head * d)..<((head + 1) * d)
                for i in ids.indices {
                    let logits = ids.indices.map { j in columns.reduce(0.0) { $0 + q[i][$1] * k[j][$1] } / Double(d).squareRoot() }
                    let top = logits.max()!
                    let weights = logits.map { Foundation.exp($0 - top) }
                    let total = weights.reduce(0, +)
                    for column in columns { context[i][column] = ids.indices.reduce(0.0) { $0 + weights[$1] / total * v[$1][column] } }
                }
            }
            x = layerNorm(add(linear(context, p + "attention.output.dense"), x), p + "attention.output.LayerNorm")
            let inner = linear(x, p + "intermediate.dense").map { $0.map { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) } }
            x = layerNorm(add(linear(inner, p + "output.dense"), x), p + "output.LayerNorm")
        }
        return x
    }

    func assertStates(_ states: Tensor, batch b: Int, match expected: [[Double]], file: StaticString = #filePath, line: UInt = #line) {
        for (t, row) in expected.enumerated() {
            for (j, value) in row.enumerated() {
                XCTAssertEqual(Double(states[b, t, j]), value, accuracy: 2e-5, "batch \(b) token \(t) feature \(j)", file: file, line: line)
            }
        }
    }

    func testSingleSequencesMatchFloat64Reference() throws {
        let tensors = Self.randomTensors()
        let model = try BertModel(configuration: Self.configuration, tensors: tensors)
        for ids in [[2, 5, 7, 3], [1], [0, 10, 4, 4, 9, 3]] {
            assertStates(try model.hiddenStates(tokenIDs: [ids]), batch: 0, match: Self.reference(ids, tensors))
        }
    }

    func testPaddedBatchMatchesEachSequenceAlone() throws {
        let tensors = Self.randomTensors()
        let model = try BertModel(configuration: Self.configuration, tensors: tensors)
        let batch = [[2, 5, 7, 3], [1, 6], [0, 10, 4, 4, 9, 3]]
        let states = try model.hiddenStates(tokenIDs: batch)
        XCTAssertEqual(states.shape, [3, 6, 8])
        for (b, ids) in batch.enumerated() { assertStates(states, batch: b, match: Self.reference(ids, tensors)) }
    }

    func testPrefixedAndHalfPrecisionWeightsLoad() throws {
        let tensors = Self.randomTensors()
        var prefixed: [String: Tensor] = [:]
        for (name, tensor) in tensors { prefixed["bert." + name] = tensor.contiguous(as: .bfloat16) }
        let model = try BertModel(configuration: Self.configuration, tensors: prefixed)
        // The reference gets the same bfloat16-rounded weights.
        let rounded = tensors.mapValues { $0.contiguous(as: .bfloat16).contiguous(as: .float32) }
        assertStates(try model.hiddenStates(tokenIDs: [[3, 1, 4]]), batch: 0, match: Self.reference([3, 1, 4], rounded))
    }

    func testMissingWrongAndNonFiniteWeightsThrow() throws {
        var tensors = Self.randomTensors()
        tensors["encoder.layer.1.output.dense.bias"] = nil
        XCTAssertThrowsError(try BertModel(configuration: Self.configuration, tensors: tensors)) {
            XCTAssertEqual($0 as? BertModelError, .missingTensor("encoder.layer.1.output.dense.bias"))
        }
        tensors = Self.randomTensors()
        tensors["embeddings.position_embeddings.weight"] = try Tensor(zeros: [5, 8])
        XCTAssertThrowsError(try BertModel(configuration: Self.configuration, tensors: tensors)) {
            XCTAssertEqual($0 as? BertModelError, .wrongShape(tensor: "embeddings.position_embeddings.weight", expected: [6, 8], got: [5, 8]))
        }
        for bad in [Float.nan, .infinity] {
            tensors = Self.randomTensors()
            tensors["encoder.layer.0.attention.self.value.weight"]![3, 17 % 8] = bad
            XCTAssertThrowsError(try BertModel(configuration: Self.configuration, tensors: tensors)) {
                XCTAssertEqual($0 as? BertModelError, .nonFiniteWeight(tensor: "encoder.layer.0.attention.self.value.weight"))
            }
        }
    }

    /// One model shared by concurrent callers (as the embeddings endpoint's encoder could be)
    /// gives every batch the states it gets alone: each forward pass takes the model's reused
    /// workspace or a fresh one, never one another pass is writing. Batches of different
    /// shapes make the workspace grow while others use it.
    func testConcurrentCallersMatchSerial() throws {
        let model = try BertModel(configuration: Self.configuration, tensors: Self.randomTensors())
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33) % n
        }
        let batches = (0..<256).map { _ in (0...next(4)).map { _ in (0...next(6)).map { _ in next(11) } } }
        let expected = try batches.map { try model.hiddenStates(tokenIDs: $0, threads: 2).floats() }
        let results = UnsafeMutableBufferPointer<[Float]>.allocate(capacity: batches.count)
        results.initialize(repeating: [])
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: batches.count) { i in
            results[i] = (try? model.hiddenStates(tokenIDs: batches[i], threads: 2).floats()) ?? []
        }
        for i in batches.indices { XCTAssertEqual(results[i], expected[i], "batch \(i): \(batches[i])") }
    }

    func testBadInputsThrow() throws {
        let model = try BertModel(configuration: Self.configuration, tensors: Self.randomTensors())
        XCTAssertThrowsError(try model.hiddenStates(tokenIDs: [])) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "tokenIDs") }
        XCTAssertThrowsError(try model.hiddenStates(tokenIDs: [[1], []])) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "tokenIDs[1].count") }
        XCTAssertThrowsError(try model.hiddenStates(tokenIDs: [[1, 2, 3, 4, 5, 6, 7]])) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "tokenIDs[0].count") }
        XCTAssertThrowsError(try model.hiddenStates(tokenIDs: [[1, 11]])) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "tokenIDs[0]") }
        XCTAssertThrowsError(try model.hiddenStates(tokenIDs: [[-1]])) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "tokenIDs[0]") }
        XCTAssertThrowsError(try BertConfiguration(vocabularySize: 10, hiddenSize: 8, layerCount: 1, headCount: 3, intermediateSize: 4, maxPositions: 4))
        XCTAssertThrowsError(try BertConfiguration(vocabularySize: 10, hiddenSize: 8, layerCount: 0, headCount: 2, intermediateSize: 4, maxPositions: 4))
    }
}
