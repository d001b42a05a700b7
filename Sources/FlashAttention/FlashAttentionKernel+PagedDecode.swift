import Foundation
import FlashCore

extension FlashAttentionKernel {
    /// Key positions per split of the paged kernel, and per online-softmax step within a split:
    /// both fixed and counted in positions, never in blocks, threads or batch rows, so a row's
    /// arithmetic depends only on its own keys — not on the pool's block size either (a server
    /// with `--block-size 8` gives the same logits as `flash generate`, which uses 16).
    static let pagedSplitKeys = 256
    static let pagedTileKeys = 16

    /// Paged attention, split-KV like `decode`: each (row, key/value head, split of its
    /// positions) is one work item computing an unnormalised partial output with its own max m
    /// and sum l by an online softmax over tiles of `pagedTileKeys` positions, for the query
    /// heads of the group together (each key and value row is read once per group). A row with
    /// one split normalises in place; several are merged through their log-sum-exps in split
    /// order, O = Σ_c e^(m_c − M)·acc_c / Σ_c e^(m_c − M)·l_c.
    ///
    /// Order of operations, fixed per row: keys in position order; per tile the scores, their
    /// max, one rescale of acc and l if the max grew, then l += p_j and acc += p_j·v_j for j in
    /// order. Position j is read from block `table[j / blockSize]` at slot `j % blockSize`, so
    /// tiles may straddle blocks. Which thread runs an item changes nothing.
    static func pagedDecode(_ batch: PagedAttention.Batch, threads: Int?) {
        let group = batch.heads / batch.keyHeads
        let d = batch.headDim, bs = batch.blockSize
        let splitKeys = pagedSplitKeys, tileKeys = pagedTileKeys
        var items = [(row: Int, keyHead: Int, split: Int, splits: Int)]()
        var firstItem = [Int]()  // per (row, keyHead) pair
        for r in 0..<batch.keyCounts.count {
            let splits = (batch.keyCounts[r] + splitKeys - 1) / splitKeys
            for g in 0..<batch.keyHeads {
                firstItem.append(items.count)
                for s in 0..<splits { items.append((r, g, s, splits)) }
            }
        }
        firstItem.append(items.count)
        // Partial results of multi-split items: acc [group × d], then m [group], l [group].
        let partialSize = group * (d + 2)
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: max(1, items.count * partialSize))
        defer { partials.deallocate() }
        let kvRow = batch.keyHeads * d
        let blockFloats = bs * kvRow

        Parallel.forEachDynamicPolling(items.count, threads: threads) { index in
            let item = items[index]
            let count = batch.keyCounts[item.row]
            let table = batch.blockTables[item.row]
            let position = count - 1  // the row's own position, for ALiBi
            let partial = partials + index * partialSize
            let acc = partial, maxima = partial + group * d, sums = maxima + group
            acc.update(repeating: 0, count: group * d)
            maxima.update(repeating: -.infinity, count: group)
            sums.update(repeating: 0, count: group)
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: group * tileKeys)
            defer { scores.deallocate() }
            // Offsets of the tile's key/value rows in the pools (the same for K and V).
            let rowOffsets = UnsafeMutablePointer<Int>.allocate(capacity: tileKeys)
            defer { rowOffsets.deallocate() }
            let query = batch.query + item.row * batch.queryRowStride + item.keyHead * group * d
            let lastKey = min(count, (item.split + 1) * splitKeys)
            var tileStart = item.split * splitKeys
            while tileStart < lastKey {
                let n = min(tileKeys, lastKey - tileStart)
                for j in 0..<n {
                    let p = tileStart + j
                    rowOffsets[j] = Int(table[p / bs]) * blockFloats + (p % bs) * kvRow + item.keyHead * d
                }
                for h in 0..<group {
                    let q = query + h * d
                    let slope = batch.alibiSlopes?[item.keyHead * group + h]
                    let s = scores + h * tileKeys
                    var tileMax = -Float.infinity
                    for j in 0..<n {
                        var score = VectorMath.dot(q, batch.keys + rowOffsets[j], count: d) * batch.scale
                        if let slope { score += slope * Float(tileStart + j - position) }
                        s[j] = score
                        tileMax = max(tileMax, score)
                    }
                    let newMax = max(maxima[h], tileMax)
                    let a = acc + h * d
                    if newMax > maxima[h] && maxima[h] > -.infinity {
                        let factor = Foundation.exp(maxima[h] - newMax)
                        VectorMath.scale(a, count: d, by: factor)
                        sums[h] *= factor
                    }
                    maxima[h] = newMax
                    for j in 0..<n {
                        let p = Foundation.exp(s[j] - newMax)
                        sums[h] += p
                        VectorMath.addScaled(batch.values + rowOffsets[j], p, to: a, count: d)
                    }
                }
                tileStart += n
            }
            if item.splits == 1 {
                let out = batch.output + item.row * batch.outputRowStride + item.keyHead * group * d
                for h in 0..<group {
                    (out + h * d).update(from: acc + h * d, count: d)
                    VectorMath.scale(out + h * d, count: d, by: 1 / sums[h])
                }
            }
        }

        // Merge rows whose keys were split.
        let pairs = (0..<(firstItem.count - 1)).filter { firstItem[$0 + 1] - firstItem[$0] > 1 }
        guard !pairs.isEmpty else { return }
        Parallel.forEachDynamicPolling(pairs.count, threads: threads) { index in
            let pair = pairs[index]
            let row = pair / batch.keyHeads, keyHead = pair % batch.keyHeads
            let out = batch.output + row * batch.outputRowStride + keyHead * group * d
            for h in 0..<group {
                var globalMax = -Float.infinity
                for item in firstItem[pair]..<firstItem[pair + 1] {
                    globalMax = max(globalMax, partials[item * partialSize + group * d + h])
                }
                let o = out + h * d
                o.update(repeating: 0, count: d)
                var total: Float = 0
                for item in firstItem[pair]..<firstItem[pair + 1] {
                    let partial = partials + item * partialSize
                    let weight = Foundation.exp(partial[group * d + h] - globalMax)
                    total += weight * partial[group * d + group + h]
                    VectorMath.addScaled(partial + h * d, weight, to: o, count: d)
                }
                VectorMath.scale(o, count: d, by: 1 / total)
            }
        }
    }
}
