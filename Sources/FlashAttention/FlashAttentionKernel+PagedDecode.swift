import Foundation
import FlashCore

extension FlashAttentionKernel {
    /// Blocks per split of the paged kernel's keys: fixed (never from the thread count or the
    /// batch) so that a row's arithmetic depends only on its own key count.
    static func pagedSplitBlocks(blockSize: Int) -> Int { max(1, 256 / blockSize) }

    /// Paged attention, split-KV like `decode`: each (row, key/value head, split of its blocks)
    /// is one work item computing an unnormalised partial output with its own max m and sum l
    /// by an online softmax over its blocks, for the query heads of the group together (each
    /// key and value row is read once per group). A row with one split normalises in place;
    /// several are merged through their log-sum-exps in split order,
    /// O = Σ_c e^(m_c − M)·acc_c / Σ_c e^(m_c − M)·l_c.
    ///
    /// Order of operations, fixed per row: keys in position order within a block; per block the
    /// scores, their max, one rescale of acc and l if the max grew, then l += p_j and
    /// acc += p_j·v_j for j in order. Which thread runs an item changes nothing.
    static func pagedDecode(_ batch: PagedAttention.Batch, threads: Int?) {
        let group = batch.heads / batch.keyHeads
        let d = batch.headDim, bs = batch.blockSize
        let splitBlocks = pagedSplitBlocks(blockSize: bs)
        var items = [(row: Int, keyHead: Int, split: Int, splits: Int)]()
        var firstItem = [Int]()  // per (row, keyHead) pair
        for r in 0..<batch.keyCounts.count {
            let blocks = (batch.keyCounts[r] + bs - 1) / bs
            let splits = (blocks + splitBlocks - 1) / splitBlocks
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
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: group * bs)
            defer { scores.deallocate() }
            let query = batch.query + item.row * batch.queryRowStride + item.keyHead * group * d
            let firstBlock = item.split * splitBlocks
            let lastBlock = min((count + bs - 1) / bs, firstBlock + splitBlocks)
            for b in firstBlock..<lastBlock {
                let n = min(bs, count - b * bs)
                let base = Int(table[b]) * blockFloats + item.keyHead * d
                for h in 0..<group {
                    let q = query + h * d
                    let slope = batch.alibiSlopes?[item.keyHead * group + h]
                    let s = scores + h * bs
                    var blockMax = -Float.infinity
                    for j in 0..<n {
                        var score = VectorMath.dot(q, batch.keys + base + j * kvRow, count: d) * batch.scale
                        if let slope { score += slope * Float(b * bs + j - position) }
                        s[j] = score
                        blockMax = max(blockMax, score)
                    }
                    let newMax = max(maxima[h], blockMax)
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
                        VectorMath.addScaled(batch.values + base + j * kvRow, p, to: a, count: d)
                    }
                }
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
