/// Turns one sample's token bytes into text pieces safe to send: never a split UTF-8 character,
/// never the text of a stop string, and nothing after one.
///
/// Invariant: `pending` holds bytes not yet sent; of them, a tail that could still grow into a
/// stop string, or an unfinished UTF-8 character, waits for more bytes. A stop string can never
/// straddle sent and pending bytes, because any tail that is a prefix of a stop string is held.
public struct TextAssembler {
    public let stops: [[UInt8]]
    private var pending: [UInt8] = []
    public private(set) var stopped = false

    public init(stops: [String]) { self.stops = stops.map { Array($0.utf8) } }

    /// Adds a token's bytes; returns the text that may be sent now. After a stop string is found
    /// `stopped` is true and the text before it is the last piece.
    public mutating func append(_ bytes: [UInt8]) -> String {
        guard !stopped else { return "" }
        pending += bytes
        if let cut = earliestStop() {
            stopped = true
            let piece = String(decoding: pending[..<cut], as: UTF8.self)
            pending.removeAll()
            return piece
        }
        var sendable = pending.count - longestStopPrefixSuffix()
        sendable = completeUTF8Prefix(pending[..<sendable])
        let piece = String(decoding: pending[..<sendable], as: UTF8.self)
        pending.removeFirst(sendable)
        return piece
    }

    /// The text still held when the sample ends (an unfinished character becomes U+FFFD).
    public mutating func flush() -> String {
        defer { pending.removeAll() }
        return stopped ? "" : String(decoding: pending, as: UTF8.self)
    }

    private func earliestStop() -> Int? {
        var best: Int?
        for stop in stops where stop.count <= pending.count {
            var start = 0
            while start + stop.count <= pending.count {
                if pending[start..<(start + stop.count)].elementsEqual(stop) {
                    if best == nil || start < best! { best = start }
                    break
                }
                start += 1
            }
        }
        return best
    }

    /// Length of the longest tail of `pending` that is a proper prefix of some stop string.
    private func longestStopPrefixSuffix() -> Int {
        var longest = 0
        for stop in stops {
            var length = min(stop.count - 1, pending.count)
            while length > longest {
                if pending[(pending.count - length)...].elementsEqual(stop[..<length]) { longest = length; break }
                length -= 1
            }
        }
        return longest
    }
}

/// Length of the longest prefix of `bytes` that ends on a UTF-8 character boundary.
func completeUTF8Prefix(_ bytes: ArraySlice<UInt8>) -> Int {
    let start = bytes.startIndex
    var i = bytes.endIndex
    var back = 0
    // Walk back over at most 3 continuation bytes to the last lead byte.
    while i > start && back < 4 && bytes[i - 1] & 0xC0 == 0x80 { i -= 1; back += 1 }
    guard i > start else { return bytes.count }
    let lead = bytes[i - 1]
    let needed = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
    return back + 1 >= needed ? bytes.count : i - 1 - start
}
