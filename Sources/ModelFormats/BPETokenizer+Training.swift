import FlashCore

extension BPETokenizer {
    /// Learns merges from `corpus` until the vocabulary (256 bytes + merges) reaches
    /// `vocabularySize`, or until no adjacent pair occurs at least twice (a merge that saves a
    /// single token is not worth an id; the result may then be smaller than asked).
    ///
    /// Each step merges the most frequent adjacent pair, counted over all pre-tokens weighted by
    /// how often each occurs (overlapping occurrences count, as in GPT-2 and Hugging Face);
    /// ties go to the smallest (left, right) id pair, so training is deterministic. A merge
    /// rewrites each occurrence left to right without overlap.
    ///
    /// Cost: pair counts are kept incrementally — a merge touches only the words that contain
    /// its pair (found through a pair → words index), and the next best pair comes from a max-heap
    /// whose stale entries are skipped lazily — so ~4000 merges on 1 MB take seconds, not the
    /// hours a recount per merge would.
    public static func train(corpus: String, vocabularySize: Int) throws -> BPETokenizer {
        try InvalidArgument.require(vocabularySize >= 256, "vocabularySize",
                                    expected: "≥ 256 (the byte tokens)", got: "\(vocabularySize)")
        var trainer = Trainer(corpus: corpus)
        return BPETokenizer(uncheckedTrainedMerges: trainer.learn(count: vocabularySize - 256))
    }

    init(uncheckedTrainedMerges merges: [Merge]) {
        try! self.init(merges: merges)  // Trainer only makes merges of existing ids.
    }
}

/// Incremental BPE training state.
private struct Trainer {
    /// Distinct pre-tokens as symbol ids, and how often each occurs.
    var words: [[Int32]] = []
    var frequencies: [Int] = []
    /// Occurrences of each adjacent pair (key: left << 32 | right), weighted by frequency.
    var pairCounts: [UInt64: Int] = [:]
    /// Words that contain (or once contained) each pair; checked before use.
    var wordsWithPair: [UInt64: [Int32]] = [:]
    var heap = PairHeap()

    init(corpus: String) {
        var wordIndex: [[UInt8]: Int] = [:]
        for piece in BPETokenizer.preTokenizeBytes(corpus) {
            if let index = wordIndex[piece] {
                frequencies[index] += 1
            } else {
                wordIndex[piece] = words.count
                words.append(piece.map { Int32($0) })
                frequencies.append(1)
            }
        }
        for (index, word) in words.enumerated() where word.count > 1 {
            for position in 0..<(word.count - 1) {
                let key = Trainer.key(word[position], word[position + 1])
                pairCounts[key, default: 0] += frequencies[index]
                wordsWithPair[key, default: []].append(Int32(index))
            }
        }
        for (key, count) in pairCounts { heap.push(count: count, key: key) }
    }

    static func key(_ left: Int32, _ right: Int32) -> UInt64 { UInt64(UInt32(left)) << 32 | UInt64(UInt32(right)) }

    mutating func learn(count: Int) -> [BPETokenizer.Merge] {
        var merges: [BPETokenizer.Merge] = []
        var visited = [Int](repeating: -1, count: words.count)  // last merge that rewrote each word
        while merges.count < count, let (best, bestCount) = popBest(), bestCount >= 2 {
            let merge = BPETokenizer.Merge(Int(best >> 32), Int(best & 0xFFFF_FFFF))
            let newID = Int32(256 + merges.count)
            var delta: [UInt64: Int] = [:]
            for wordIndex in wordsWithPair[best] ?? [] where visited[Int(wordIndex)] != merges.count {
                visited[Int(wordIndex)] = merges.count
                let old = words[Int(wordIndex)]
                let new = BPETokenizer.apply(merge, id: newID, to: old)
                if new.count == old.count { continue }  // stale index entry: pair no longer here
                let frequency = frequencies[Int(wordIndex)]
                for position in 0..<(old.count - 1) { delta[Trainer.key(old[position], old[position + 1]), default: 0] -= frequency }
                for position in 0..<max(new.count - 1, 0) {
                    let key = Trainer.key(new[position], new[position + 1])
                    delta[key, default: 0] += frequency
                    if new[position] == newID || new[position + 1] == newID { wordsWithPair[key, default: []].append(wordIndex) }
                }
                words[Int(wordIndex)] = new
            }
            for (key, change) in delta where change != 0 {
                let updated = pairCounts[key, default: 0] + change
                pairCounts[key] = updated == 0 ? nil : updated
                if updated > 0 { heap.push(count: updated, key: key) }
            }
            wordsWithPair[best] = nil
            merges.append(merge)
        }
        return merges
    }

    /// The pair with the highest current count (ties: smallest key), skipping heap entries whose
    /// count is out of date.
    mutating func popBest() -> (UInt64, Int)? {
        while let (count, key) = heap.pop() {
            if pairCounts[key] == count { return (key, count) }
        }
        return nil
    }
}

/// A binary max-heap of (count, pair key), ordered by count, then by the smaller key.
private struct PairHeap {
    private var entries: [(count: Int, key: UInt64)] = []

    private static func above(_ a: (count: Int, key: UInt64), _ b: (count: Int, key: UInt64)) -> Bool {
        a.count != b.count ? a.count > b.count : a.key < b.key
    }

    mutating func push(count: Int, key: UInt64) {
        entries.append((count, key))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard PairHeap.above(entries[child], entries[parent]) else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (Int, UInt64)? {
        guard let top = entries.first else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var best = parent
                if left < entries.count && PairHeap.above(entries[left], entries[best]) { best = left }
                if right < entries.count && PairHeap.above(entries[right], entries[best]) { best = right }
                if best == parent { break }
                entries.swapAt(parent, best)
                parent = best
            }
        }
        return (top.count, top.key)
    }
}
