extension ParameterLayout {
    /// The flat-buffer range of block `l`'s tensors (contiguous by construction).
    public func layerRange(_ l: Int) -> Range<Int> {
        let prefix = "layers.\(l)."
        let inLayer = entries.filter { $0.name.hasPrefix(prefix) }
        guard let first = inLayer.first, let last = inLayer.last else { return 0..<0 }
        return first.offset..<(last.offset + last.count)
    }

    /// Gradient buckets for data parallelism, in the order the backward pass finishes them:
    /// block L−1, …, block 0 (each complete once its backward returns), then what lies outside
    /// the blocks (embeddings, final norm, head: complete when the whole backward returns).
    /// Every rank derives the same list from the same configuration, so all ranks reduce the
    /// same buckets in the same order.
    public var gradientBuckets: [Range<Int>] {
        guard !layers.isEmpty else { return count > 0 ? [0..<count] : [] }
        let blocks = (0..<layers.count).reversed().map(layerRange)
        let start = layerRange(0).lowerBound, end = layerRange(layers.count - 1).upperBound
        return (blocks + [0..<start, end..<count]).filter { !$0.isEmpty }
    }

    /// The part of each bucket that rank `rank` of `ranks` owns under ZeRO-1: bucket b of n
    /// values is cut into `ranks` pieces of ⌈n/ranks⌉ (the last ones shorter or empty), and the
    /// rank owns piece `rank` of every bucket. Returns the pieces and the padded piece length per bucket.
    public func zeroShards(rank: Int, ranks: Int) -> [(bucket: Range<Int>, piece: Int, owned: Range<Int>)] {
        gradientBuckets.map { bucket in
            let piece = (bucket.count + ranks - 1) / ranks
            let low = min(bucket.upperBound, bucket.lowerBound + rank * piece)
            return (bucket, piece, low..<min(bucket.upperBound, low + piece))
        }
    }
}
