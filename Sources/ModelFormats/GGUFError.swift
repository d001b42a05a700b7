/// Errors reading a GGUF file. Each names what was wrong and where, so a malformed or truncated
/// file is reported, never crashed on.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
    /// The file does not start with "GGUF".
    case badMagic(UInt32)
    /// A GGUF version other than 2 or 3.
    case unsupportedVersion(UInt32)
    /// The file ends before a field it declares.
    case truncated(what: String, offset: Int, needed: Int, fileBytes: Int)
    /// A count (of tensors, keys, array elements, string bytes) larger than the file could hold.
    case countTooLarge(what: String, count: UInt64)
    /// A metadata value of a type GGUF does not define.
    case unknownValueType(key: String, type: UInt32)
    /// A string that is not valid UTF-8.
    case invalidString(what: String, offset: Int)
    /// A metadata key that appears twice.
    case duplicateKey(String)
    /// A tensor name that appears twice.
    case duplicateTensor(String)
    /// A tensor description that cannot be right (rank, dimensions, offset).
    case invalidTensor(name: String, reason: String)
    /// A tensor of a ggml type number this reader does not know.
    case unknownTensorType(name: String, type: UInt32)
    /// A tensor of a known ggml type this engine cannot compute with.
    case unsupportedTensorType(name: String, type: String)
    /// A tensor's data extends past the end of the file.
    case tensorOutOfBounds(name: String, begin: Int, end: Int, fileBytes: Int)
    /// `general.alignment` is not a power of two in 1...65536.
    case badAlignment(UInt64)
    /// A metadata key the model needs is absent.
    case missingMetadata(String)
    /// A metadata value of the wrong type.
    case wrongMetadataType(key: String, expected: String)
    /// A tensor the model needs is absent.
    case missingTensor(String)
    /// The file could not be opened or mapped.
    case io(path: String, reason: String)

    /// What is wrong with the file, and where.
    public var description: String {
        switch self {
        case .badMagic(let magic):
            "gguf: bad magic 0x\(String(magic, radix: 16)) (expected 0x46554747, the bytes 'GGUF')"
        case .unsupportedVersion(let version): "gguf: version \(version) is not supported (expected 2 or 3)"
        case .truncated(let what, let offset, let needed, let fileBytes):
            "gguf: file truncated reading \(what): needs \(needed) bytes at offset \(offset), file has \(fileBytes)"
        case .countTooLarge(let what, let count): "gguf: \(what) count \(count) is larger than the file could hold"
        case .unknownValueType(let key, let type): "gguf: metadata '\(key)' has unknown value type \(type) (expected 0...12)"
        case .invalidString(let what, let offset): "gguf: \(what) at offset \(offset) is not valid UTF-8"
        case .duplicateKey(let key): "gguf: metadata key '\(key)' appears twice"
        case .duplicateTensor(let name): "gguf: tensor '\(name)' appears twice"
        case .invalidTensor(let name, let reason): "gguf: tensor '\(name)': \(reason)"
        case .unknownTensorType(let name, let type): "gguf: tensor '\(name)' has unknown ggml type \(type)"
        case .unsupportedTensorType(let name, let type):
            "gguf: tensor '\(name)' has type \(type); supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K"
        case .tensorOutOfBounds(let name, let begin, let end, let fileBytes):
            "gguf: tensor '\(name)' data [\(begin), \(end)) runs past the end of the \(fileBytes)-byte file"
        case .badAlignment(let value): "gguf: general.alignment \(value) is not a power of two in 1...65536"
        case .missingMetadata(let key): "gguf: missing metadata key '\(key)'"
        case .wrongMetadataType(let key, let expected): "gguf: metadata '\(key)' is not \(expected)"
        case .missingTensor(let name): "gguf: no tensor named '\(name)'"
        case .io(let path, let reason): "gguf: \(path): \(reason)"
        }
    }
}
