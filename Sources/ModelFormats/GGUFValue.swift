/// One metadata value of a GGUF file (all thirteen GGUF value types).
public enum GGUFValue: Sendable, Equatable, CustomStringConvertible {
    /// Integers of the widths GGUF defines.
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    /// 64-bit integers, floats, Booleans and UTF-8 strings.
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    /// An array of values of one type.
    case array([GGUFValue])

    /// The value as an integer, if it is one of the integer types (or a bool).
    public var integer: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): Int(v)
        case .bool(let v): v ? 1 : 0
        default: nil
        }
    }

    /// The value as a floating-point number, if it is numeric.
    public var double: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: integer.map(Double.init)
        }
    }

    /// The string, if this is a string value.
    public var string: String? { if case .string(let s) = self { s } else { nil } }
    /// The Boolean, if this is a Boolean value.
    public var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
    /// The elements, if this is an array value.
    public var array: [GGUFValue]? { if case .array(let a) = self { a } else { nil } }

    /// The value as text (long strings shortened, arrays as their count).
    public var description: String {
        switch self {
        case .string(let s): s.count > 60 ? "\"\(s.prefix(60))…\" (\(s.utf8.count) bytes)" : "\"\(s)\""
        case .array(let a): "[\(a.count) values]"
        case .bool(let b): "\(b)"
        case .float32(let v): "\(v)"
        case .float64(let v): "\(v)"
        default: "\(integer ?? 0)"
        }
    }

    /// Reads a value of GGUF type code `type` (0...12).
    static func read(type: UInt32, key: String, from cursor: inout GGUFByteCursor, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try cursor.read(UInt8.self, key))
        case 1: return .int8(try cursor.read(Int8.self, key))
        case 2: return .uint16(try cursor.read(UInt16.self, key))
        case 3: return .int16(try cursor.read(Int16.self, key))
        case 4: return .uint32(try cursor.read(UInt32.self, key))
        case 5: return .int32(try cursor.read(Int32.self, key))
        case 6: return .float32(try cursor.readFloat(key))
        case 7:
            let byte = try cursor.read(UInt8.self, key)
            return .bool(byte != 0)
        case 8: return .string(try cursor.readString(key))
        case 9:
            // Nested arrays are legal but no model uses more than one level; cap the depth so a
            // crafted file cannot recurse without bound.
            guard depth < 4 else { throw GGUFError.countTooLarge(what: "\(key) array nesting", count: UInt64(depth)) }
            let elementType = try cursor.read(UInt32.self, "\(key) array type")
            guard elementType <= 12 else { throw GGUFError.unknownValueType(key: key, type: elementType) }
            let count = try cursor.readCount("\(key) array", minimumElementBytes: minimumBytes(of: elementType))
            var values = [GGUFValue]()
            values.reserveCapacity(count)
            for _ in 0..<count {
                values.append(try read(type: elementType, key: key, from: &cursor, depth: depth + 1))
            }
            return .array(values)
        case 10: return .uint64(try cursor.read(UInt64.self, key))
        case 11: return .int64(try cursor.read(Int64.self, key))
        case 12: return .float64(try cursor.readDouble(key))
        default: throw GGUFError.unknownValueType(key: key, type: type)
        }
    }

    /// The fewest bytes one value of `type` occupies (used to bound array counts).
    private static func minimumBytes(of type: UInt32) -> Int {
        switch type {
        case 0, 1, 7: 1
        case 2, 3: 2
        case 4, 5, 6: 4
        case 8, 10, 11, 12: 8
        case 9: 12
        default: 1
        }
    }
}
