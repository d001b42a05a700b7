/// Which KV-cache blocks each sequence owns, with prefix caching (vLLM's scheme).
///
/// The cache is a pool of `blockCount` blocks of `blockSize` token positions. A sequence's
/// block table lists its blocks in position order: position p lives in block
/// `table[p / blockSize]` at slot `p % blockSize`. Blocks are allocated as a sequence grows and
/// returned when it ends.
///
/// Prefix caching: once a block is full (its tokens written), it is registered under the hash
/// of its tokens chained with the hash of the block before it, so a hash names the whole prefix
/// up to the block's end. A new sequence walks its prompt's full blocks and reuses every block
/// of the longest prefix found in the cache (reference count + 1) instead of computing them.
/// At most `(prompt.count − 1) / blockSize` blocks are reused, so at least the last prompt token
/// is always computed: its logits are what the first sample is drawn from.
///
/// Free blocks wait in one queue that is also the eviction order (least recently used first):
/// an allocation takes the head, and if that block still holds a cached prefix, the cache entry
/// is dropped (evicted). When a sequence ends, its blocks that hold no cached prefix go to the
/// head (reused at once; nothing is lost), and its cached blocks to the tail in reverse order,
/// so a prefix's last blocks are evicted before its first ones (a later hit needs the first).
/// A cached block in the free queue that a new sequence hits leaves the queue.
///
/// Reference counts let sequences share blocks: prefix hits, and `fork` (n > 1 samples of one
/// prompt share the prompt's blocks). A full block is never written again, so sharing is safe;
/// the one block that may be written, a shared partly filled last block, is copied first
/// (copy-on-write): `appendSlots` allocates a private copy and reports (source, destination)
/// for the caller to copy in the KV storage before writing.
///
/// Hash collisions: a cached block also stores its tokens, and a lookup compares them, so two
/// different blocks that hash alike are never confused; only the parent hash is trusted.
public final class BlockManager {
    /// Errors for calls that break the manager's rules (a caller bug, never an input problem).
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unknownSequence(Int)
        case duplicateSequence(Int)
        case tooManyTokens(sequence: Int, tokens: Int, slots: Int)
        case truncatesCachedBlock(sequence: Int, block: Int)

        public var description: String {
            switch self {
            case .unknownSequence(let s): "sequence \(s) is not known to the block manager"
            case .duplicateSequence(let s): "sequence \(s) already has blocks"
            case .tooManyTokens(let s, let tokens, let slots):
                "sequence \(s): \(tokens) tokens committed but only \(slots) slots allocated"
            case .truncatesCachedBlock(let s, let b): "sequence \(s): truncating would cut block \(b), which the prefix cache holds"
            }
        }
    }

    /// A block's chained hash: of its tokens and the hash of the block before it.
    public typealias BlockHash = UInt64

    public let blockCount: Int
    public let blockSize: Int
    public let prefixCaching: Bool

    /// Per block: sequences (and forks) holding it.
    public private(set) var referenceCounts: [Int]
    /// Per block: the hash it is registered under in the prefix cache, if any.
    public private(set) var blockHashes: [BlockHash?]
    private var blockTokens: [[Int]]
    private var cache: [BlockHash: [Int]] = [:]  // hash → cached block ids (tokens compared on lookup)

    // The free queue as an intrusive doubly linked list over block ids (−1: none).
    private var next: [Int], previous: [Int]
    private var inQueue: [Bool]
    private var head = -1, tail = -1
    public private(set) var freeBlockCount = 0

    private struct Sequence {
        var table: [Int] = []
        /// Tokens whose keys and values are written (or reused), in order.
        var tokens: [Int] = []
        /// Leading full blocks already registered in the prefix cache (or found there).
        var hashedBlocks = 0
        /// Hashes of the full blocks so far, chained.
        var hashes: [BlockHash] = []
    }
    private var sequences: [Int: Sequence] = [:]

    /// Prefix-cache statistics: prompt tokens looked up and tokens found cached.
    public private(set) var queriedTokens = 0
    public private(set) var hitTokens = 0

    public init(blockCount: Int, blockSize: Int = 16, prefixCaching: Bool = true) {
        precondition(blockCount > 0 && blockSize > 0, "BlockManager needs blockCount > 0 and blockSize > 0")
        self.blockCount = blockCount
        self.blockSize = blockSize
        self.prefixCaching = prefixCaching
        referenceCounts = Array(repeating: 0, count: blockCount)
        blockHashes = Array(repeating: nil, count: blockCount)
        blockTokens = Array(repeating: [], count: blockCount)
        next = Array(repeating: -1, count: blockCount)
        previous = Array(repeating: -1, count: blockCount)
        inQueue = Array(repeating: false, count: blockCount)
        for b in 0..<blockCount { pushBack(b) }
    }

    // MARK: hashing

    /// The hash of a block's `tokens` chained with its parent's hash (nil for the first block).
    /// FNV-1a over 64-bit words, finished with SplitMix64's mixer.
    public static func hash(parent: BlockHash?, tokens: some Collection<Int>) -> BlockHash {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func absorb(_ word: UInt64) {
            h ^= word
            h = h &* 0x0000_0100_0000_01B3
        }
        absorb(parent ?? 0x5EED)
        absorb(parent == nil ? 0 : 1)
        for t in tokens { absorb(UInt64(bitPattern: Int64(t))) }
        var z = h &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The chained hashes of every full block of `tokens`.
    public func chainedHashes(_ tokens: [Int]) -> [BlockHash] {
        var hashes: [BlockHash] = []
        var parent: BlockHash? = nil
        var start = 0
        while start + blockSize <= tokens.count {
            let h = Self.hash(parent: parent, tokens: tokens[start..<(start + blockSize)])
            hashes.append(h)
            parent = h
            start += blockSize
        }
        return hashes
    }

    private func cachedBlock(_ hash: BlockHash, tokens: ArraySlice<Int>) -> Int? {
        cache[hash]?.first { blockTokens[$0].elementsEqual(tokens) }
    }

    // MARK: queries

    /// Block ids of sequence `id`, in position order.
    public func blockTable(_ id: Int) -> [Int] { sequences[id]?.table ?? [] }

    /// Positions whose keys and values sequence `id` holds.
    public func tokenCount(_ id: Int) -> Int { sequences[id]?.tokens.count ?? 0 }

    /// Whether sequence `id` is known.
    public func contains(_ id: Int) -> Bool { sequences[id] != nil }

    /// Blocks held by at least one sequence.
    public var usedBlockCount: Int { blockCount - freeBlockCount }

    /// Blocks holding a cached prefix (held or waiting in the free queue).
    public var cachedBlockCount: Int { cache.values.reduce(0) { $0 + $1.count } }

    /// The free queue from head (next to be allocated / evicted) to tail.
    public var freeQueue: [Int] {
        var result: [Int] = []
        var b = head
        while b >= 0 { result.append(b); b = next[b] }
        return result
    }

    /// Blocks of the longest cached prefix of `prompt` that a new sequence would reuse
    /// (never the block holding the last prompt token).
    public func cachedPrefix(_ prompt: [Int]) -> [Int] {
        guard prefixCaching, prompt.count > 1 else { return [] }
        let usable = (prompt.count - 1) / blockSize
        var blocks: [Int] = []
        var parent: BlockHash? = nil
        for i in 0..<usable {
            let slice = prompt[(i * blockSize)..<((i + 1) * blockSize)]
            let h = Self.hash(parent: parent, tokens: slice)
            guard let b = cachedBlock(h, tokens: slice) else { break }
            blocks.append(b)
            parent = h
        }
        return blocks
    }

    /// Blocks a new sequence for `prompt` would take from the free queue to hold its whole
    /// prompt: new blocks plus cached hits that are waiting in the free queue.
    public func blocksNeeded(prompt: [Int]) -> Int {
        let hits = cachedPrefix(prompt)
        let total = (prompt.count + blockSize - 1) / blockSize
        return total - hits.count + hits.filter { referenceCounts[$0] == 0 }.count
    }

    // MARK: sequence life

    /// Starts sequence `id` for `prompt`: reuses the longest cached prefix and returns how
    /// many prompt tokens it covers (a multiple of `blockSize`, less than `prompt.count`).
    /// No new block is allocated yet (see `allocateSlots`).
    @discardableResult
    public func startSequence(_ id: Int, prompt: [Int]) throws -> Int {
        guard sequences[id] == nil else { throw Failure.duplicateSequence(id) }
        let hits = cachedPrefix(prompt)
        var s = Sequence()
        for b in hits { take(b) }
        s.table = hits
        s.tokens = Array(prompt[..<(hits.count * blockSize)])
        s.hashedBlocks = hits.count
        s.hashes = hits.map { blockHashes[$0]! }
        sequences[id] = s
        if prefixCaching {
            queriedTokens += prompt.count
            hitTokens += s.tokens.count
        }
        return s.tokens.count
    }

    /// Makes room for `count` more positions of sequence `id` (allocating blocks from the
    /// free queue, evicting cached prefixes there as needed). Returns nil, changing nothing,
    /// when the free queue is too short; otherwise the copy-on-write copies the caller must do
    /// in the KV storage before writing: (source block, destination block) pairs.
    public func appendSlots(_ id: Int, count: Int) throws -> [(source: Int, destination: Int)]? {
        guard var s = sequences[id] else { throw Failure.unknownSequence(id) }
        let have = s.tokens.count
        let needBlocks = (have + count + blockSize - 1) / blockSize
        var newBlocks = max(0, needBlocks - s.table.count)
        // A partly filled last block that another sequence shares must be copied first.
        let lastIndex = have / blockSize
        let copyLast = count > 0 && have % blockSize != 0 && lastIndex < s.table.count
            && referenceCounts[s.table[lastIndex]] > 1
        if copyLast { newBlocks += 1 }
        guard newBlocks <= freeBlockCount else { return nil }
        var copies: [(source: Int, destination: Int)] = []
        if copyLast {
            let shared = s.table[lastIndex]
            let copy = allocate()
            referenceCounts[shared] -= 1
            s.table[lastIndex] = copy
            copies.append((shared, copy))
        }
        while s.table.count < needBlocks { s.table.append(allocate()) }
        sequences[id] = s
        return copies
    }

    /// Records that the keys and values of `tokens` (the next positions of sequence `id`)
    /// are written, and registers the blocks this fills in the prefix cache.
    public func commit(_ id: Int, tokens: [Int]) throws {
        guard var s = sequences[id] else { throw Failure.unknownSequence(id) }
        guard s.tokens.count + tokens.count <= s.table.count * blockSize else {
            throw Failure.tooManyTokens(sequence: id, tokens: s.tokens.count + tokens.count, slots: s.table.count * blockSize)
        }
        s.tokens += tokens
        while (s.hashedBlocks + 1) * blockSize <= s.tokens.count {
            let i = s.hashedBlocks
            let slice = s.tokens[(i * blockSize)..<((i + 1) * blockSize)]
            let h = Self.hash(parent: s.hashes.last, tokens: slice)
            s.hashes.append(h)
            let b = s.table[i]
            // A block computed twice (two sequences prefilled the same prefix at once) stays
            // private: the first copy is the cached one.
            if prefixCaching && blockHashes[b] == nil && cachedBlock(h, tokens: slice) == nil {
                blockHashes[b] = h
                blockTokens[b] = Array(slice)
                cache[h, default: []].append(b)
            }
            s.hashedBlocks += 1
        }
        sequences[id] = s
    }

    /// Forgets the committed tokens of sequence `id` after its first `count` (guesses a
    /// speculative step rejected); their slots stay allocated and are written again. A block
    /// registered in the prefix cache is never cut (that would corrupt the cache).
    public func truncate(_ id: Int, to count: Int) throws {
        guard var s = sequences[id] else { throw Failure.unknownSequence(id) }
        guard count < s.tokens.count else { return }
        let keptBlocks = count / blockSize
        for i in keptBlocks..<max(keptBlocks, s.hashedBlocks) where blockHashes[s.table[i]] != nil {
            throw Failure.truncatesCachedBlock(sequence: id, block: s.table[i])
        }
        s.tokens.removeLast(s.tokens.count - count)
        s.hashedBlocks = min(s.hashedBlocks, keptBlocks)
        s.hashes.removeLast(s.hashes.count - s.hashedBlocks)
        sequences[id] = s
    }

    /// A new sequence `child` sharing every block of `parent` (reference counts + 1): the
    /// parent's tokens need not be computed again. A later append to a shared partly filled
    /// last block copies it first.
    public func fork(_ parent: Int, child: Int) throws {
        guard let s = sequences[parent] else { throw Failure.unknownSequence(parent) }
        guard sequences[child] == nil else { throw Failure.duplicateSequence(child) }
        for b in s.table { referenceCounts[b] += 1 }
        sequences[child] = s
    }

    /// Ends sequence `id` (finished, cancelled or preempted): each block's reference count
    /// drops, and blocks no one holds return to the free queue (see the type's notes for where).
    public func free(_ id: Int) {
        guard let s = sequences.removeValue(forKey: id) else { return }
        for b in s.table.reversed() {
            referenceCounts[b] -= 1
            guard referenceCounts[b] == 0 else { continue }
            if blockHashes[b] != nil { pushBack(b) } else { pushFront(b) }
        }
    }

    // MARK: pool

    /// Takes the head of the free queue, evicting its cached prefix if it has one.
    private func allocate() -> Int {
        let b = head
        precondition(b >= 0, "allocate() with an empty free queue")
        unlink(b)
        if let h = blockHashes[b] {
            cache[h]?.removeAll { $0 == b }
            if cache[h]?.isEmpty == true { cache[h] = nil }
            blockHashes[b] = nil
            blockTokens[b] = []
        }
        referenceCounts[b] = 1
        return b
    }

    /// One more holder of block `b` (a prefix hit), taking it off the free queue if idle.
    private func take(_ b: Int) {
        if inQueue[b] { unlink(b) }
        referenceCounts[b] += 1
    }

    private func pushBack(_ b: Int) {
        previous[b] = tail
        next[b] = -1
        if tail >= 0 { next[tail] = b } else { head = b }
        tail = b
        inQueue[b] = true
        freeBlockCount += 1
    }

    private func pushFront(_ b: Int) {
        next[b] = head
        previous[b] = -1
        if head >= 0 { previous[head] = b } else { tail = b }
        head = b
        inQueue[b] = true
        freeBlockCount += 1
    }

    private func unlink(_ b: Int) {
        if previous[b] >= 0 { next[previous[b]] = next[b] } else { head = next[b] }
        if next[b] >= 0 { previous[next[b]] = previous[b] } else { tail = previous[b] }
        next[b] = -1
        previous[b] = -1
        inQueue[b] = false
        freeBlockCount -= 1
    }
}
