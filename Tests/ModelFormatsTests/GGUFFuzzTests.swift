import XCTest
import ModelFormats

/// Fuzzes the GGUF reader: thousands of randomly mutated and truncated copies of a valid file
/// must each either parse (and then decode every tensor within bounds) or throw a `GGUFError`;
/// a crash fails the whole test run. The generator is seeded, so a failure reproduces.
final class GGUFFuzzTests: XCTestCase {
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    func testMutatedAndTruncatedFilesOnlyThrow() {
        let original = GGUFTestWriter.sample().bytes
        var rng = SplitMix64(state: 20_261_124)
        var parsed = 0, rejected = 0
        for _ in 0..<4000 {
            var bytes = original
            switch Int.random(in: 0..<4, using: &rng) {
            case 0:
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
            case 1:
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            case 2:
                // Overwrite an 8-byte field with an extreme value (counts, lengths, dims, offsets).
                let at = Int.random(in: 0..<(bytes.count - 8), using: &rng)
                let extreme: [UInt64] = [.max, .max / 2, 1 << 32, 1 << 62, 0, 255, 1 << 40]
                withUnsafeBytes(of: extreme.randomElement(using: &rng)!) { raw in
                    for i in 0..<8 { bytes[at + i] = raw[i] }
                }
            default:
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                bytes.insert(contentsOf: [UInt8](repeating: UInt8.random(in: 0...255, using: &rng),
                                                 count: Int.random(in: 1...16, using: &rng)), at: at)
            }
            do {
                let file = try GGUFFile(bytes: GGUFBytes(copying: bytes))
                for info in file.tensors where info.type.isSupported {
                    let matrix = try QuantizedMatrix(file: file, name: info.name)
                    _ = matrix.dequantized()
                }
                parsed += 1
            } catch is GGUFError {
                rejected += 1
            } catch {
                XCTFail("unexpected error type \(type(of: error)): \(error)")
            }
        }
        XCTAssertEqual(parsed + rejected, 4000)
        XCTAssertGreaterThan(rejected, 1000, "the mutations should break most files")
    }
}
