/// Reads little-endian values from a byte range, checking every read against the end, so a
/// truncated or lying file becomes a `GGUFError`, never an out-of-bounds access.
struct GGUFByteCursor {
    let base: UnsafeRawPointer
    let count: Int
    private(set) var offset: Int = 0

    init(base: UnsafeRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    var remaining: Int { count - offset }

    private mutating func take(_ bytes: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawPointer {
        guard bytes >= 0, bytes <= remaining else {
            throw GGUFError.truncated(what: what(), offset: offset, needed: bytes, fileBytes: count)
        }
        let pointer = base + offset
        offset += bytes
        return pointer
    }

    mutating func read<T: FixedWidthInteger>(_ type: T.Type, _ what: @autoclosure () -> String) throws -> T {
        T(littleEndian: try take(MemoryLayout<T>.size, what()).loadUnaligned(as: T.self))
    }

    mutating func readFloat(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    mutating func readDouble(_ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    /// A count that must fit in the rest of the file at `minimumElementBytes` each: this rejects
    /// counts that would overflow or make us allocate more than the file could describe.
    mutating func readCount(_ what: @autoclosure () -> String, minimumElementBytes: Int) throws -> Int {
        let value = try read(UInt64.self, what())
        guard value <= UInt64(remaining / max(minimumElementBytes, 1)) else {
            throw GGUFError.countTooLarge(what: what(), count: value)
        }
        return Int(value)
    }

    /// A GGUF string: a UInt64 byte length, then that many UTF-8 bytes (no terminator).
    mutating func readString(_ what: @autoclosure () -> String) throws -> String {
        let start = offset
        let length = try readCount(what(), minimumElementBytes: 1)
        let pointer = try take(length, what())
        let bytes = UnsafeRawBufferPointer(start: pointer, count: length)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw GGUFError.invalidString(what: what(), offset: start)
        }
        return text
    }

    mutating func skip(to newOffset: Int, _ what: @autoclosure () -> String) throws {
        _ = try take(newOffset - offset, what())
    }
}
