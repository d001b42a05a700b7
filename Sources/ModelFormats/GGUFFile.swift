import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bytes of a model file that stay put for the life of this object: a read-only memory map of
/// the file (pages are loaded on first touch and shared with the page cache, never copied), or
/// an owned copy of in-memory bytes.
public final class GGUFBytes: @unchecked Sendable {
    /// The first byte.
    public let pointer: UnsafeRawPointer
    /// Bytes available from `pointer`.
    public let count: Int
    private let unmap: () -> Void

    /// Maps `path` read-only.
    public init(mapping path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw GGUFError.io(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw GGUFError.io(path: path, reason: String(cString: strerror(errno))) }
        let size = Int(info.st_size)
        guard size > 0 else {
            throw GGUFError.truncated(what: "header", offset: 0, needed: 24, fileBytes: 0)
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw GGUFError.io(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        pointer = UnsafeRawPointer(address)
        count = size
        unmap = { munmap(address, size) }
    }

    /// Copies `bytes` (for files built in memory, e.g. by tests).
    public init(copying bytes: [UInt8]) {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        pointer = UnsafeRawPointer(buffer)
        count = bytes.count
        unmap = { buffer.deallocate() }
    }

    deinit { unmap() }
}

/// Where one tensor lives in a GGUF file.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    public let name: String
    /// ggml order: `dimensions[0]` is the innermost (contiguous) axis, i.e. the row length.
    public let dimensions: [Int]
    /// How the elements are encoded (F32, F16, or a block quantisation).
    public let type: GGMLType
    /// Byte offset from the start of the file.
    public let fileOffset: Int
    /// Bytes of the encoded data.
    public let byteCount: Int

    /// Elements in all axes.
    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Row length (innermost axis) and number of rows (all other axes together).
    public var rowLength: Int { dimensions.first ?? 1 }
    /// Rows: the product of every axis but the innermost.
    public var rowCount: Int { dimensions.dropFirst().reduce(1, *) }
}

/// A parsed GGUF file (versions 2 and 3): header, every metadata key/value, tensor infos, and the
/// tensor data left in place in the mapped file.
///
/// Layout: magic "GGUF", UInt32 version, UInt64 tensor count, UInt64 metadata count, the metadata
/// (string key, UInt32 type, value), the tensor infos (string name, UInt32 rank, UInt64 dims,
/// UInt32 ggml type, UInt64 offset into the data section), padding to `general.alignment`
/// (default 32), then the data section. Every count, offset and size is validated against the
/// file before use.
public final class GGUFFile: Sendable {
    /// The file's bytes (memory-mapped).
    public let bytes: GGUFBytes
    /// GGUF version, 2 or 3.
    public let version: UInt32
    /// Every metadata key and its value.
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// The tensors, in file order.
    public let tensors: [GGUFTensorInfo]
    /// Alignment of the data section and of each tensor in it (`general.alignment`, default 32).
    public let alignment: Int
    /// Byte offset of the data section from the start of the file.
    public let dataOffset: Int
    private let tensorIndex: [String: Int]

    /// Maps and parses the file at `path`.
    public convenience init(path: String) throws {
        try self.init(bytes: GGUFBytes(mapping: path))
    }

    /// Parses `bytes`.
    public init(bytes: GGUFBytes) throws {
        self.bytes = bytes
        var cursor = GGUFByteCursor(base: bytes.pointer, count: bytes.count)
        let magic = try cursor.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else { throw GGUFError.badMagic(magic) }
        version = try cursor.read(UInt32.self, "version")
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(version) }
        // A tensor info takes at least 8 (name length) + 4 (rank) + 4 (type) + 8 (offset) bytes,
        // a metadata entry at least 8 (key length) + 4 (type) + 1 bytes.
        let tensorCount = try cursor.readCount("tensor", minimumElementBytes: 24)
        let metadataCount = try cursor.readCount("metadata", minimumElementBytes: 13)

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        for index in 0..<metadataCount {
            let key = try cursor.readString("metadata key \(index)")
            let type = try cursor.read(UInt32.self, "type of metadata '\(key)'")
            let value = try GGUFValue.read(type: type, key: key, from: &cursor)
            guard metadata[key] == nil else { throw GGUFError.duplicateKey(key) }
            metadata[key] = value
            keys.append(key)
        }
        self.metadata = metadata
        metadataKeys = keys

        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard let a = value.integer, a > 0, a <= 65536, a & (a - 1) == 0 else {
                throw GGUFError.badAlignment(UInt64(clamping: value.integer ?? -1))
            }
            alignment = a
        }
        self.alignment = alignment

        struct RawInfo { let name: String; let dims: [Int]; let type: GGMLType; let offset: UInt64 }
        var raw: [RawInfo] = []
        raw.reserveCapacity(tensorCount)
        for index in 0..<tensorCount {
            let name = try cursor.readString("tensor name \(index)")
            let rank = try cursor.read(UInt32.self, "rank of tensor '\(name)'")
            guard rank >= 1, rank <= 4 else { throw GGUFError.invalidTensor(name: name, reason: "rank \(rank) (expected 1...4)") }
            var dims: [Int] = []
            var elements = 1
            for axis in 0..<Int(rank) {
                let size = try cursor.read(UInt64.self, "dimension \(axis) of tensor '\(name)'")
                guard size <= UInt64(Int32.max) * 64 else {
                    throw GGUFError.invalidTensor(name: name, reason: "dimension \(axis) of \(size) is too large")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(size))
                guard !overflow, product <= Int(UInt32.max) * 64 else {
                    throw GGUFError.invalidTensor(name: name, reason: "element count overflows")
                }
                elements = product
                dims.append(Int(size))
            }
            let typeCode = try cursor.read(UInt32.self, "type of tensor '\(name)'")
            guard let type = GGMLType(rawValue: typeCode) else { throw GGUFError.unknownTensorType(name: name, type: typeCode) }
            let offset = try cursor.read(UInt64.self, "offset of tensor '\(name)'")
            raw.append(RawInfo(name: name, dims: dims, type: type, offset: offset))
        }

        // The data section starts at the next multiple of the alignment.
        let headerEnd = cursor.offset
        let (padded, overflow) = headerEnd.addingReportingOverflow(alignment - 1)
        guard !overflow else { throw GGUFError.truncated(what: "data section", offset: headerEnd, needed: alignment, fileBytes: bytes.count) }
        dataOffset = padded / alignment * alignment
        guard dataOffset <= bytes.count else {
            throw GGUFError.truncated(what: "padding before the data section", offset: headerEnd,
                                      needed: dataOffset - headerEnd, fileBytes: bytes.count)
        }

        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        for info in raw {
            guard index[info.name] == nil else { throw GGUFError.duplicateTensor(info.name) }
            let rowLength = info.dims[0]
            guard rowLength % info.type.blockSize == 0 else {
                throw GGUFError.invalidTensor(name: info.name,
                                              reason: "row length \(rowLength) is not a multiple of the \(info.type) block size \(info.type.blockSize)")
            }
            guard info.offset % UInt64(alignment) == 0 else {
                throw GGUFError.invalidTensor(name: info.name, reason: "offset \(info.offset) is not a multiple of the alignment \(alignment)")
            }
            let elements = info.dims.reduce(1, *)
            let byteCount = elements / info.type.blockSize * info.type.blockBytes
            guard info.offset <= UInt64(bytes.count) else {
                throw GGUFError.tensorOutOfBounds(name: info.name, begin: Int(clamping: info.offset), end: Int.max, fileBytes: bytes.count)
            }
            let begin = dataOffset + Int(info.offset)
            let (end, endOverflow) = begin.addingReportingOverflow(byteCount)
            guard !endOverflow, end <= bytes.count else {
                throw GGUFError.tensorOutOfBounds(name: info.name, begin: begin, end: endOverflow ? Int.max : end, fileBytes: bytes.count)
            }
            index[info.name] = infos.count
            infos.append(GGUFTensorInfo(name: info.name, dimensions: info.dims, type: info.type, fileOffset: begin, byteCount: byteCount))
        }
        tensors = infos
        tensorIndex = index
    }

    /// The tensor named `name`, or throws `missingTensor`.
    public func tensor(_ name: String) throws -> GGUFTensorInfo {
        guard let i = tensorIndex[name] else { throw GGUFError.missingTensor(name) }
        return tensors[i]
    }

    /// Whether the file has a tensor named `name`.
    public func hasTensor(_ name: String) -> Bool { tensorIndex[name] != nil }

    /// Pointer to the first byte of a tensor's data (valid while this file lives).
    public func data(of info: GGUFTensorInfo) -> UnsafeRawPointer { bytes.pointer + info.fileOffset }

    // MARK: typed metadata

    /// An integer metadata value, or throws naming the key.
    public func integer(_ key: String) throws -> Int {
        guard let value = metadata[key] else { throw GGUFError.missingMetadata(key) }
        guard let n = value.integer else { throw GGUFError.wrongMetadataType(key: key, expected: "an integer") }
        return n
    }

    /// A numeric metadata value, or throws naming the key.
    public func number(_ key: String) throws -> Double {
        guard let value = metadata[key] else { throw GGUFError.missingMetadata(key) }
        guard let n = value.double else { throw GGUFError.wrongMetadataType(key: key, expected: "a number") }
        return n
    }

    /// A string metadata value, or throws naming the key.
    public func string(_ key: String) throws -> String {
        guard let value = metadata[key] else { throw GGUFError.missingMetadata(key) }
        guard let s = value.string else { throw GGUFError.wrongMetadataType(key: key, expected: "a string") }
        return s
    }
}
