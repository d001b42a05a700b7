import Foundation
import FlashCore

/// Errors reading or writing a safetensors file. Each names what was wrong and where.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
    /// Shorter than the 8-byte header length.
    case fileTooSmall(bytes: Int)
    /// The declared header length exceeds the file.
    case headerTooLarge(declared: UInt64, fileBytes: Int)
    /// The header is not a JSON object of tensor entries.
    case headerNotJSON(String)
    /// A tensor entry with a bad shape or offsets.
    case invalidEntry(name: String, reason: String)
    /// A tensor of a dtype other than F32, F16 or BF16.
    case unsupportedDType(name: String, dtype: String)
    /// A tensor's offsets point past the data section.
    case dataOutOfBounds(name: String, begin: Int, end: Int, dataBytes: Int)
    /// The file has no tensor of this name.
    case missingTensor(String)
    /// The file could not be read or written.
    case io(path: String, reason: String)

    /// What is wrong with the file or the request.
    public var description: String {
        switch self {
        case .fileTooSmall(let bytes): "safetensors: file of \(bytes) bytes is too small for the 8-byte header length"
        case .headerTooLarge(let declared, let fileBytes): "safetensors: header length \(declared) runs past the end of the \(fileBytes)-byte file"
        case .headerNotJSON(let reason): "safetensors: header is not a JSON object: \(reason)"
        case .invalidEntry(let name, let reason): "safetensors: tensor '\(name)': \(reason)"
        case .unsupportedDType(let name, let dtype): "safetensors: tensor '\(name)' has dtype \(dtype); supported: F32, F16, BF16"
        case .dataOutOfBounds(let name, let begin, let end, let dataBytes): "safetensors: tensor '\(name)' data [\(begin), \(end)) lies outside the \(dataBytes)-byte data section"
        case .missingTensor(let name): "safetensors: no tensor named '\(name)'"
        case .io(let path, let reason): "safetensors: \(path): \(reason)"
        }
    }
}

/// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`),
/// then the raw little-endian tensor data, offsets relative to the end of the header.
public enum Safetensors {
    /// Parses a whole file held in memory. Every entry is validated: known dtype, non-negative
    /// shape, `end - begin` equal to the element count times the element size, inside the data.
    /// Only tensors whose names pass `include` are read (and validated); the others are skipped,
    /// e.g. the Int64 `position_ids` buffer that BERT checkpoints carry.
    public static func read(
        _ data: Data, including include: (String) -> Bool = { _ in true }
    ) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard data.count >= 8 else { throw SafetensorsError.fileTooSmall(bytes: data.count) }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw SafetensorsError.headerTooLarge(declared: headerLength, fileBytes: data.count)
        }
        let headerEnd = 8 + Int(headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<headerEnd))
        } catch {
            throw SafetensorsError.headerNotJSON("\(error.localizedDescription)")
        }
        guard let header = json as? [String: Any] else { throw SafetensorsError.headerNotJSON("top level is not an object") }
        let dataBytes = data.count - headerEnd
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let entries = value as? [String: Any] else {
                    throw SafetensorsError.invalidEntry(name: name, reason: "metadata is not an object")
                }
                for (key, text) in entries {
                    guard let text = text as? String else {
                        throw SafetensorsError.invalidEntry(name: name, reason: "metadata value for '\(key)' is not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            if !include(name) { continue }
            guard let entry = value as? [String: Any] else { throw SafetensorsError.invalidEntry(name: name, reason: "entry is not an object") }
            guard let dtypeName = entry["dtype"] as? String else { throw SafetensorsError.invalidEntry(name: name, reason: "missing dtype") }
            guard let elementType = ElementType(rawValue: dtypeName) else { throw SafetensorsError.unsupportedDType(name: name, dtype: dtypeName) }
            guard let shapeValues = entry["shape"] as? [Any], let shape = integers(shapeValues), shape.allSatisfy({ $0 >= 0 }) else {
                throw SafetensorsError.invalidEntry(name: name, reason: "shape is not a list of non-negative integers")
            }
            guard let offsetValues = entry["data_offsets"] as? [Any], let offsets = integers(offsetValues), offsets.count == 2 else {
                throw SafetensorsError.invalidEntry(name: name, reason: "data_offsets is not a pair of integers")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin, end <= dataBytes else {
                throw SafetensorsError.dataOutOfBounds(name: name, begin: begin, end: end, dataBytes: dataBytes)
            }
            var count = 1
            for size in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: size)
                guard !overflow, product <= dataBytes else {
                    throw SafetensorsError.invalidEntry(name: name, reason: "shape \(shape) needs more bytes than the file holds")
                }
                count = product
            }
            guard end - begin == count * elementType.byteSize else {
                throw SafetensorsError.invalidEntry(name: name, reason: "shape \(shape) of \(dtypeName) needs \(count * elementType.byteSize) bytes, data_offsets give \(end - begin)")
            }
            let tensor = try Tensor(zeros: shape, elementType: elementType)
            data.withUnsafeBytes { raw in
                tensor.storage.pointer.copyMemory(from: raw.baseAddress! + headerEnd + begin, byteCount: end - begin)
            }
            tensors[name] = tensor
        }
        return (tensors, metadata)
    }

    /// Reads a file from disk (only the tensors whose names pass `include`).
    public static func read(
        path: String, including include: (String) -> Bool = { _ in true }
    ) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) } catch {
            throw SafetensorsError.io(path: path, reason: error.localizedDescription)
        }
        return try read(data, including: include)
    }

    /// Serialises tensors (each written in its own element type, row-major) with sorted names,
    /// 8-byte aligned data as the format recommends.
    public static func serialize(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        var contiguous: [Tensor] = []
        for name in names {
            let tensor = tensors[name]!.contiguous()
            let bytes = tensor.elementCount * tensor.elementType.byteSize
            header[name] = ["dtype": tensor.elementType.rawValue, "shape": tensor.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
            contiguous.append(tensor)
        }
        var headerData = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while headerData.count % 8 != 0 { headerData.append(0x20) }  // pad with spaces
        var result = Data()
        var length = UInt64(headerData.count).littleEndian
        withUnsafeBytes(of: &length) { result.append(contentsOf: $0) }
        result.append(headerData)
        for tensor in contiguous {
            result.append(Data(bytes: tensor.storage.pointer + tensor.offset * tensor.elementType.byteSize,
                               count: tensor.elementCount * tensor.elementType.byteSize))
        }
        return result
    }

    /// Writes tensors to `path` atomically (a temporary file renamed over the target), so a
    /// crash mid-write leaves any previous file intact.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        let data = try serialize(tensors, metadata: metadata)
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw SafetensorsError.io(path: path, reason: error.localizedDescription)
        }
    }

    private static func integers(_ values: [Any]) -> [Int]? {
        var result: [Int] = []
        for value in values {
            guard let number = value as? NSNumber else { return nil }
            let d = number.doubleValue
            guard d == d.rounded(), abs(d) <= 9.0e15 else { return nil }
            result.append(Int(d))
        }
        return result
    }
}
