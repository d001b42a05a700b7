import XCTest
import Foundation
import FlashCore
import Transformer

final class SamplerTests: XCTestCase {
    /// softmax(logits / T) in Double: the reference distribution.
    static func softmax(_ logits: [Float], temperature: Double) -> [Double] {
        let maximum = Double(logits.max()!)
        let weights = logits.map { exp((Double($0) - maximum) / temperature) }
        let total = weights.reduce(0, +)
        return weights.map { $0 / total }
    }

    /// Draws `draws` samples and checks every frequency against `expected` within 5 standard
    /// errors of a binomial proportion (a false alarm has probability ~1e-6 per entry).
    func assertFrequencies(_ sampler: inout Sampler, _ logits: [Float], expected: [Double], draws: Int = 100_000,
                           file: StaticString = #filePath, line: UInt = #line) {
        var counts = [Int](repeating: 0, count: logits.count)
        for _ in 0..<draws { counts[sampler.sample(logits)] += 1 }
        for (index, p) in expected.enumerated() {
            let frequency = Double(counts[index]) / Double(draws)
            let tolerance = 5 * (p * (1 - p) / Double(draws)).squareRoot() + 1e-9
            XCTAssertEqual(frequency, p, accuracy: tolerance, "token \(index)", file: file, line: line)
        }
    }

    func testGreedyIsArgmaxWithTiesToLowestIndex() throws {
        var sampler = try Sampler(temperature: 0, seed: 1)
        XCTAssertEqual(sampler.sample([0.1, 3, -2, 3, 2.9]), 1)
        XCTAssertEqual(sampler.sample([-.infinity, .nan, -5, -4]), 3)
        XCTAssertEqual(sampler.sample([7]), 0)
        var random = SystemRandomNumberGenerator()
        for _ in 0..<100 {
            let logits = (0..<50).map { _ in Float.random(in: -10...10, using: &random) }
            XCTAssertEqual(sampler.sample(logits), logits.firstIndex(of: logits.max()!)!)
        }
    }

    func testFrequenciesMatchSoftmaxAtSeveralTemperatures() throws {
        let logits: [Float] = [1.0, 2.0, 0.5, -1.0, 1.5, 0.0]
        for temperature in [0.5, 1.0, 2.0] {
            var sampler = try Sampler(temperature: Float(temperature), seed: 42)
            assertFrequencies(&sampler, logits, expected: Self.softmax(logits, temperature: temperature))
        }
    }

    func testTopKNeverLeavesTheTopKAndRenormalises() throws {
        let logits: [Float] = [0.3, 2.0, 1.0, 1.8, -0.5, 1.2, 0.9]
        var sampler = try Sampler(temperature: 1, topK: 3, seed: 7)
        let top3 = [1, 3, 5]  // logits 2.0, 1.8, 1.2
        let kept = Self.softmax(top3.map { logits[$0] }, temperature: 1)
        var expected = [Double](repeating: 0, count: logits.count)
        for (position, index) in top3.enumerated() { expected[index] = kept[position] }
        assertFrequencies(&sampler, logits, expected: expected)
        // Ties at the cut keep the lower index.
        var tied = try Sampler(temperature: 1, topK: 2, seed: 3)
        for _ in 0..<2000 { XCTAssertTrue([0, 1].contains(tied.sample([1, 1, 1, 0]))) }
    }

    func testTopKOfALargeVocabularyMatchesAFullSort() throws {
        // 5000 logits on a coarse grid (many ties): every draw lies among the 40 a full sort
        // (ties to the lower index) puts first, and at a low temperature a largest logit wins.
        var generator = SystemRandomNumberGenerator()
        let logits = (0..<5000).map { _ in Float(Int.random(in: -300...300, using: &generator)) / 10 }
        let sorted = logits.indices.sorted { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }
        let top40 = Set(sorted.prefix(40))
        var sampler = try Sampler(temperature: 1, topK: 40, topP: 0.95, seed: 11)
        for _ in 0..<500 { XCTAssertTrue(top40.contains(sampler.sample(logits))) }
        var cold = try Sampler(temperature: 1e-3, topK: 40, seed: 11)
        for _ in 0..<20 { XCTAssertEqual(logits[cold.sample(logits)], logits[sorted[0]]) }
    }

    func testTopPKeepsTheSmallestNucleus() throws {
        // Probabilities 0.5, 0.3, 0.15, 0.05 (logits are their logs, T = 1).
        let logits = [0.15, 0.5, 0.05, 0.3].map { Float(log($0)) }
        // p = 0.75: 0.5 < 0.75 ≤ 0.8, so the nucleus is {1, 3}, renormalised to 0.625 / 0.375.
        var sampler = try Sampler(temperature: 1, topP: 0.75, seed: 9)
        assertFrequencies(&sampler, logits, expected: [0, 0.625, 0, 0.375])
        // p = 0.4: the single most likely token.
        var narrow = try Sampler(temperature: 1, topP: 0.4, seed: 9)
        for _ in 0..<1000 { XCTAssertEqual(narrow.sample(logits), 1) }
        // top-k then top-p: k = 3 renormalises to 0.5/0.95 …; p = 0.9 keeps all three.
        var both = try Sampler(temperature: 1, topK: 3, topP: 0.9, seed: 5)
        assertFrequencies(&both, logits, expected: [0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95])
    }

    func testSameSeedSameSequence() throws {
        let logits = (0..<100).map { Float($0 % 7) * 0.3 }
        var a = try Sampler(temperature: 1.3, topK: 40, topP: 0.95, seed: 123)
        var b = try Sampler(temperature: 1.3, topK: 40, topP: 0.95, seed: 123)
        var c = try Sampler(temperature: 1.3, topK: 40, topP: 0.95, seed: 124)
        let first = (0..<200).map { _ in a.sample(logits) }
        XCTAssertEqual(first, (0..<200).map { _ in b.sample(logits) })
        XCTAssertNotEqual(first, (0..<200).map { _ in c.sample(logits) })
    }

    func testMaskedAndInfiniteLogits() throws {
        var sampler = try Sampler(temperature: 1, seed: 2)
        for _ in 0..<500 {
            XCTAssertTrue([1, 3].contains(sampler.sample([-.infinity, 0, .nan, 0])))
            XCTAssertTrue([0, 2].contains(sampler.sample([.infinity, 5, .infinity])))
        }
        XCTAssertEqual(sampler.sample([-.infinity, -.infinity]), 0)
    }

    func testRejectsBadArguments() {
        XCTAssertThrowsError(try Sampler(temperature: -1)) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "temperature") }
        XCTAssertThrowsError(try Sampler(temperature: .nan)) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "temperature") }
        XCTAssertThrowsError(try Sampler(topK: 0)) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "topK") }
        XCTAssertThrowsError(try Sampler(topP: 0)) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "topP") }
        XCTAssertThrowsError(try Sampler(topP: 1.5)) { XCTAssertEqual(($0 as? InvalidArgument)?.argument, "topP") }
    }
}
