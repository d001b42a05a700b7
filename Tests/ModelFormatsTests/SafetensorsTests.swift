import XCTest
import FlashCore
import ModelFormats

final class SafetensorsTests: XCTestCase {
    func testRoundTripAllElementTypes() throws {
        let a = try Tensor(shape: [2, 3], values: [1, -2, 3.5, 0, .infinity, -0.0])
        let b = try Tensor(shape: [4], values: [1, 2, 3, 65504], elementType: .float16)
        let c = try Tensor(shape: [1, 2], values: [1.5, -3], elementType: .bfloat16)
        let data = try Safetensors.serialize(["a": a, "b": b, "c": c], metadata: ["format": "pt"])
        let (tensors, metadata) = try Safetensors.read(data)
        XCTAssertEqual(metadata, ["format": "pt"])
        XCTAssertEqual(tensors["a"]?.floats(), a.floats())
        XCTAssertEqual(tensors["b"]?.elementType, .float16)
        XCTAssertEqual(tensors["b"]?.floats(), [1, 2, 3, 65504])
        XCTAssertEqual(tensors["c"]?.shape, [1, 2])
        XCTAssertEqual(tensors["c"]?.floats(), [1.5, -3])
    }

    /// A file written by Python's `safetensors` layout rules, built by hand: header length,
    /// JSON header, then the data (one F32 tensor [2] = [1, 2]).
    func testReadsHandBuiltFile() throws {
        let header = #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        var data = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        for value: Float in [1, 2] { var bits = value.bitPattern.littleEndian; withUnsafeBytes(of: &bits) { data.append(contentsOf: $0) } }
        XCTAssertEqual(try Safetensors.read(data).tensors["x"]?.floats(), [1, 2])
    }

    func testMalformedFilesThrow() throws {
        XCTAssertThrowsError(try Safetensors.read(Data([1, 2, 3]))) { XCTAssertEqual($0 as? SafetensorsError, .fileTooSmall(bytes: 3)) }
        var huge = Data(repeating: 0xFF, count: 8)
        huge.append(contentsOf: [0x7B, 0x7D])
        XCTAssertThrowsError(try Safetensors.read(huge))
        func file(_ header: String, dataBytes: Int) -> Data {
            var d = Data()
            var length = UInt64(header.utf8.count).littleEndian
            withUnsafeBytes(of: &length) { d.append(contentsOf: $0) }
            d.append(contentsOf: Array(header.utf8))
            d.append(Data(count: dataBytes))
            return d
        }
        XCTAssertThrowsError(try Safetensors.read(file("not json", dataBytes: 0)))
        XCTAssertThrowsError(try Safetensors.read(file(#"{"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, dataBytes: 8)))
        XCTAssertThrowsError(try Safetensors.read(file(#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, dataBytes: 8)))
        XCTAssertThrowsError(try Safetensors.read(file(#"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, dataBytes: 8)))
        XCTAssertThrowsError(try Safetensors.read(file(#"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}"#, dataBytes: 8)))
        XCTAssertThrowsError(try Safetensors.read(file(#"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, dataBytes: 8)))
    }
}
