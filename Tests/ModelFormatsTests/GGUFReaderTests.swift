import XCTest
import ModelFormats

/// Builds GGUF files byte by byte, independently of the reader, so tests can state exactly what
/// the file holds.
struct GGUFTestWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
    mutating func pad(to alignment: Int) { while bytes.count % alignment != 0 { bytes.append(0) } }

    /// A small valid file: metadata of several types and three tensors (F32 [3, 2], F16 [4],
    /// Q8_0 [32, 1]) with known values.
    static func sample(alignment: UInt32 = 32) -> (bytes: [UInt8], f32: [Float], f16: [Float], q8: [Float]) {
        var w = GGUFTestWriter()
        w.u32(0x4655_4747); w.u32(3); w.u64(3); w.u64(6)
        w.string("general.architecture"); w.u32(8); w.string("llama")
        w.string("general.alignment"); w.u32(4); w.u32(alignment)
        w.string("test.float"); w.u32(6); w.f32(1.5)
        w.string("test.int64"); w.u32(11); w.u64(UInt64(bitPattern: -7))
        w.string("test.bool"); w.u32(7); w.u8(1)
        w.string("test.array"); w.u32(9); w.u32(8); w.u64(2); w.string("a"); w.string("βγ")
        // Tensor infos: name, rank, dims (innermost first), type, offset in the data section.
        w.string("weights"); w.u32(2); w.u64(3); w.u64(2); w.u32(0); w.u64(0)
        w.string("halves"); w.u32(1); w.u64(4); w.u32(1); w.u64(UInt64(alignment))
        w.string("q8"); w.u32(2); w.u64(32); w.u64(1); w.u32(8); w.u64(UInt64(2 * alignment))
        w.pad(to: Int(alignment))
        let f32: [Float] = [1, -2, 3.25, 0.5, 1e-3, -7]
        for v in f32 { w.f32(v) }
        w.pad(to: Int(alignment))
        let f16: [Float] = [0.5, -1.25, 65504, 0]
        for v in f16 { w.u16(Float16(v).bitPattern) }
        w.pad(to: Int(alignment))
        w.u16(Float16(0.25).bitPattern)
        var q8: [Float] = []
        for j in 0..<32 {
            let q = Int8(j - 16)
            w.u8(UInt8(bitPattern: q))
            q8.append(0.25 * Float(q))
        }
        return (w.bytes, f32, f16, q8)
    }
}

final class GGUFReaderTests: XCTestCase {
    func testReadsMetadataOfEveryKindAndTensors() throws {
        let sample = GGUFTestWriter.sample()
        let file = try GGUFFile(bytes: GGUFBytes(copying: sample.bytes))
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(try file.string("general.architecture"), "llama")
        XCTAssertEqual(try file.number("test.float"), 1.5)
        XCTAssertEqual(try file.integer("test.int64"), -7)
        XCTAssertEqual(file.metadata["test.bool"], .bool(true))
        XCTAssertEqual(file.metadata["test.array"], .array([.string("a"), .string("βγ")]))
        XCTAssertEqual(file.metadataKeys.count, 6)
        XCTAssertEqual(file.tensors.map(\.name), ["weights", "halves", "q8"])
        XCTAssertEqual(file.dataOffset % 32, 0)

        let weights = try QuantizedMatrix(file: file, name: "weights")
        XCTAssertEqual(weights.rows, 2)
        XCTAssertEqual(weights.columns, 3)
        XCTAssertEqual(weights.dequantized(), sample.f32)
        XCTAssertEqual(try QuantizedMatrix(file: file, name: "halves").dequantized(), sample.f16)
        XCTAssertEqual(try QuantizedMatrix(file: file, name: "q8").dequantized(), sample.q8)
        XCTAssertThrowsError(try file.tensor("nope")) { XCTAssertEqual($0 as? GGUFError, .missingTensor("nope")) }
        XCTAssertThrowsError(try file.integer("general.architecture"))
    }

    func testCustomAlignmentIsHonoured() throws {
        let sample = GGUFTestWriter.sample(alignment: 64)
        let file = try GGUFFile(bytes: GGUFBytes(copying: sample.bytes))
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.dataOffset % 64, 0)
        XCTAssertEqual(try QuantizedMatrix(file: file, name: "q8").dequantized(), sample.q8)
    }

    func testBadMagicIsReported() {
        var bytes = GGUFTestWriter.sample().bytes
        bytes[0] = UInt8(ascii: "X")
        XCTAssertThrowsError(try GGUFFile(bytes: GGUFBytes(copying: bytes))) { error in
            guard case .badMagic = error as? GGUFError else { return XCTFail("\(error)") }
        }
    }

    func testTensorPastTheEndIsReported() {
        let bytes = Array(GGUFTestWriter.sample().bytes.dropLast(4))
        XCTAssertThrowsError(try GGUFFile(bytes: GGUFBytes(copying: bytes))) { error in
            guard case .tensorOutOfBounds(let name, _, _, _) = error as? GGUFError else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "q8")
        }
    }

    func testHugeCountsAreRejectedWithoutAllocating() {
        var w = GGUFTestWriter()
        w.u32(0x4655_4747); w.u32(3); w.u64(0); w.u64(1)
        w.string("big"); w.u32(9); w.u32(4); w.u64(UInt64.max / 2)
        XCTAssertThrowsError(try GGUFFile(bytes: GGUFBytes(copying: w.bytes))) { error in
            guard case .countTooLarge = error as? GGUFError else { return XCTFail("\(error)") }
        }
        var t = GGUFTestWriter()
        t.u32(0x4655_4747); t.u32(3); t.u64(UInt64.max); t.u64(0)
        XCTAssertThrowsError(try GGUFFile(bytes: GGUFBytes(copying: t.bytes)))
        // Dimensions whose product overflows.
        var d = GGUFTestWriter()
        d.u32(0x4655_4747); d.u32(3); d.u64(1); d.u64(0)
        d.string("t"); d.u32(4); for _ in 0..<4 { d.u64(1 << 36) }; d.u32(0); d.u64(0)
        XCTAssertThrowsError(try GGUFFile(bytes: GGUFBytes(copying: d.bytes))) { error in
            guard case .invalidTensor = error as? GGUFError else { return XCTFail("\(error)") }
        }
    }

    func testUnknownTypesAreReported() {
        var w = GGUFTestWriter()
        w.u32(0x4655_4747); w.u32(3); w.u64(1); w.u64(0)
        w.string("t"); w.u32(1); w.u64(32); w.u32(99); w.u64(0)
        XCTAssertThrowsError(try GGUFFile(bytes: GGUFBytes(copying: w.bytes))) { error in
            XCTAssertEqual(error as? GGUFError, .unknownTensorType(name: "t", type: 99))
        }
        var v = GGUFTestWriter()
        v.u32(0x4655_4747); v.u32(3); v.u64(0); v.u64(1)
        v.string("k"); v.u32(13)
        XCTAssertThrowsError(try GGUFFile(bytes: GGUFBytes(copying: v.bytes))) { error in
            XCTAssertEqual(error as? GGUFError, .unknownValueType(key: "k", type: 13))
        }
        // A known ggml type this project does not compute with (IQ2_XXS) opens, but cannot be used.
        var u = GGUFTestWriter()
        u.u32(0x4655_4747); u.u32(3); u.u64(1); u.u64(0)
        u.string("t"); u.u32(1); u.u64(256); u.u32(16); u.u64(0)
        u.pad(to: 32)
        u.bytes += [UInt8](repeating: 0, count: 66)
        let file = try? GGUFFile(bytes: GGUFBytes(copying: u.bytes))
        XCTAssertNotNil(file)
        if let file {
            XCTAssertThrowsError(try QuantizedMatrix(file: file, name: "t")) { error in
                guard case .unsupportedTensorType = error as? GGUFError else { return XCTFail("\(error)") }
            }
        }
    }

    func testMissingFileIsAnIOError() {
        XCTAssertThrowsError(try GGUFFile(path: "/nonexistent/model.gguf")) { error in
            guard case .io = error as? GGUFError else { return XCTFail("\(error)") }
        }
    }
}
