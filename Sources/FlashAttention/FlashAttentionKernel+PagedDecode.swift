import Foundation
import FlashCore

extension FlashAttentionKernel {
    /// Key positions per split of the paged kernel, and per online-softmax step within a split:
    /// both fixed and counted in positions, never in blocks, threads or batch rows, so a row's
    /// arithmetic depends only on its own keys — not on the pool's block size either (a server
    /// with `--block-size 8` gives the same logits as `flash generate`, which uses 16).
    static let pagedSplitKeys = 256
    static let pagedTileKeys = 16
    /// One tile's scores or weights: `pagedTileKeys` lanes.
    typealias TileVector = SIMD16<Float>

    /// Paged attention, split-KV like `decode`: each (row, key/value head, split of its
    /// positions) is one work item computing an unnormalised partial output with its own max m
    /// and sum l by an online softmax over tiles of `pagedTileKeys` positions, for the query
    /// heads of the group together (each key and value row is read once per group). A row with
    /// one split normalises in place; several are merged through their log-sum-exps in split
    /// order, O = Σ_c e^(m_c − M)·acc_c / Σ_c e^(m_c − M)·l_c.
    ///
    /// Order of operations, fixed per row: keys in position order; per tile the scores (one
    /// `VectorMath.dot` each), their max m', the weights p = e^(s − m') of the tile in one
    /// vector, then l ← l·f + Σ p (a fixed tree) and acc ← acc·f + Σ_j p_j·v_j (one FMA chain
    /// per element, j in order), f = e^(m − m') (1 when the max did not grow). The accumulator
    /// stays in registers across the tile's keys. Position j is read from block
    /// `table[j / blockSize]` at slot `j % blockSize`, so tiles may straddle blocks; a tile's
    /// key and value rows are first gathered into Float32 scratch (widened from a Float16 pool),
    /// once for all the group's heads. Which thread runs an item changes nothing.
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
        let blockElements = bs * kvRow

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
            // The tile's key and value rows, gathered as Float32.
            let keyRows = UnsafeMutablePointer<Float>.allocate(capacity: 2 * tileKeys * d)
            defer { keyRows.deallocate() }
            let valueRows = keyRows + tileKeys * d
            let query = batch.query + item.row * batch.queryRowStride + item.keyHead * group * d
            let lastKey = min(count, (item.split + 1) * splitKeys)
            var tileStart = item.split * splitKeys
            while tileStart < lastKey {
                let n = min(tileKeys, lastKey - tileStart)
                for j in 0..<n {
                    let p = tileStart + j
                    // The row's element offset in the pools (the same for K and V).
                    let offset = Int(table[p / bs]) * blockElements + (p % bs) * kvRow + item.keyHead * d
                    batch.loadRow(batch.keys, at: offset, count: d, into: keyRows + j * d)
                    batch.loadRow(batch.values, at: offset, count: d, into: valueRows + j * d)
                }
                for h in 0..<group {
                    let q = query + h * d
                    let slope = batch.alibiSlopes?[item.keyHead * group + h]
                    // The tile's scores in one vector; lanes past n stay −Inf and weigh 0.
                    var scores = TileVector(repeating: -.infinity)
                    for j in 0..<n {
                        var score = VectorMath.dot(q, keyRows + j * d, count: d) * batch.scale
                        if let slope { score += slope * Float(tileStart + j - position) }
                        scores[j] = score
                    }
                    let oldMax = maxima[h]
                    let newMax = max(oldMax, VectorMath.max(scores))
                    // A row whose scores are all −Inf keeps zero weights rather than NaN.
                    let weights = AttentionMath.softmaxExp(scores - (newMax == -.infinity ? 0 : newMax))
                    let factor: Float = newMax > oldMax && oldMax > -.infinity ? Foundation.exp(oldMax - newMax) : 1
                    sums[h] = sums[h] * factor + VectorMath.sum(weights)
                    maxima[h] = newMax
                    addWeightedRows(weights, count: n, rows: valueRows, rescaling: acc + h * d,
                                    by: factor, headDim: d)
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

    /// acc[0..<d] ← acc·factor + Σ_{j<count} weights[j]·V_j, where V_j is the d-float row at
    /// `rows + j·d`: 64 columns at a time in registers (four 16-float vectors), then 16, then
    /// single floats, each element one FMA chain over j in order.
    @inline(__always)
    static func addWeightedRows(_ weights: TileVector, count: Int, rows: UnsafePointer<Float>,
                                rescaling acc: UnsafeMutablePointer<Float>, by factor: Float, headDim d: Int) {
        var c = 0
        while c + 64 <= d {
            addWeightedColumns(Columns<4>.self, weights, count: count, rows: rows + c, rowStride: d, acc: acc + c, factor: factor)
            c += 64
        }
        while c + 16 <= d {
            addWeightedColumns(Columns<1>.self, weights, count: count, rows: rows + c, rowStride: d, acc: acc + c, factor: factor)
            c += 16
        }
        while c < d {
            var sum = acc[c] * factor
            for j in 0..<count { sum = sum.addingProduct(weights[j], rows[j * d + c]) }
            acc[c] = sum
            c += 1
        }
    }

    /// V 16-float vectors of accumulator columns as a type (see `addWeightedColumns`).
    enum Columns<let V: Int> {}

    @inline(__always)
    static func addWeightedColumns<let V: Int>(_ columns: Columns<V>.Type, _ weights: TileVector, count: Int,
                                               rows: UnsafePointer<Float>, rowStride: Int,
                                               acc: UnsafeMutablePointer<Float>, factor: Float) {
        var sums = InlineArray<V, TileVector>(repeating: TileVector())
        for v in 0..<V { sums[v] = VectorMath.load(acc + 16 * v, count: 16) * factor }
        for j in 0..<count {
            let weight = TileVector(repeating: weights[j])
            let row = rows + j * rowStride
            for v in 0..<V { sums[v] = sums[v].addingProduct(VectorMath.load(row + 16 * v, count: 16), weight) }
        }
        for v in 0..<V { VectorMath.store(sums[v], to: acc + 16 * v, count: 16) }
    }
}
