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

    /// Rows of one sequence's chunk per work item at most: the K/V tiles are gathered once
    /// for all of them (a prefill chunk of 512 rows is 8 items per split).
    static let pagedRowBlock = 64

    /// Items of at most this many rows prefetch their next K/V tile (see `pagedDecode`).
    static let pagedPrefetchRows = 4

    /// Paged attention, split-KV like `decode`: each (row, key/value head, split of its
    /// positions) computes an unnormalised partial output with its own max m and sum l by an
    /// online softmax over tiles of `pagedTileKeys` positions, for the query heads of the group
    /// together; the partials are then merged through their log-sum-exps in split order,
    /// O = Σ_c e^(m_c − M)·acc_c / Σ_c e^(m_c − M)·l_c (one split: O = acc/l).
    ///
    /// Work items are (run of rows, key/value heads, split): consecutive rows with the same
    /// block table (a sequence's prefill chunk, or one decode row), at most `pagedRowBlock` of
    /// them, and all key/value heads when that still gives every thread two items (else one
    /// head per item). A tile's key and value rows are gathered into Float32 scratch once per
    /// item (widened from a Float16 pool) and used by every row and query head of the item:
    /// with all heads, a position's keys (or values) are one contiguous run of the pool, read
    /// once, where one head per item read a third of each run three times (decode at a
    /// 1.5k-token context spent 60% of its attention time waiting on those strided reads).
    ///
    /// Order of operations, fixed per row: keys in position order; per tile the scores (each
    /// exactly `VectorMath.dot`, see `tileScores`), their max m', the weights p = e^(s − m') of
    /// the tile in one vector, then l ← l·f + Σ p (a fixed tree) and acc ← acc·f + Σ_j p_j·v_j
    /// (one FMA chain per element, j in order), f = e^(m − m') (1 when the max did not grow). The
    /// accumulator stays in registers across the tile's keys. Tiles start at fixed positions
    /// (multiples of `pagedTileKeys`), so which rows and heads share an item, and which thread
    /// runs it, change nothing.
    /// Position j is read from block `table[j / blockSize]` at slot `j % blockSize`, so tiles may
    /// straddle blocks.
    static func pagedDecode(_ batch: PagedAttention.Batch, threads: Int?) {
        let group = batch.heads / batch.keyHeads
        let d = batch.headDim, bs = batch.blockSize
        let splitKeys = pagedSplitKeys, tileKeys = pagedTileKeys
        let rowCount = batch.keyCounts.count
        func splits(_ r: Int) -> Int { (batch.keyCounts[r] + splitKeys - 1) / splitKeys }
        // Partial results, one slot per (row, key/value head, split): acc [group × d], then
        // m [group], then l [group]. Slot of (r, g, s): firstSlot[r · keyHeads + g] + s.
        var firstSlot = [Int]()
        firstSlot.reserveCapacity(rowCount * batch.keyHeads + 1)
        var slotCount = 0
        for r in 0..<rowCount {
            for _ in 0..<batch.keyHeads {
                firstSlot.append(slotCount)
                slotCount += splits(r)
            }
        }
        firstSlot.append(slotCount)
        var runs = [(first: Int, count: Int, splits: Int)]()
        var first = 0
        while first < rowCount {
            var end = first + 1
            while end < rowCount && end - first < pagedRowBlock && batch.blockTables[end] == batch.blockTables[first] { end += 1 }
            runs.append((first, end - first, (first..<end).map(splits).max()!))
            first = end
        }
        let headsPerItem = runs.reduce(0) { $0 + $1.splits } >= 2 * (threads ?? Parallel.defaultThreads) ? batch.keyHeads : 1
        var items = [(first: Int, count: Int, keyHeads: Range<Int>, split: Int)]()
        for run in runs {
            for g in stride(from: 0, to: batch.keyHeads, by: headsPerItem) {
                for s in 0..<run.splits { items.append((run.first, run.count, g..<g + headsPerItem, s)) }
            }
        }
        let partialSize = group * (d + 2)
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: max(1, slotCount * partialSize))
        defer { partials.deallocate() }
        let kvRow = batch.keyHeads * d
        let blockElements = bs * kvRow

        Parallel.forEachDynamicPolling(items.count, threads: threads) { index in
            let item = items[index]
            let table = batch.blockTables[item.first]
            let splitStart = item.split * splitKeys, splitEnd = splitStart + splitKeys
            let rows = item.first..<(item.first + item.count)
            // The rows with keys in this split start their partials.
            var lastKey = splitStart
            for r in rows where batch.keyCounts[r] > splitStart {
                lastKey = max(lastKey, min(batch.keyCounts[r], splitEnd))
                for g in item.keyHeads {
                    let partial = partials + (firstSlot[r * batch.keyHeads + g] + item.split) * partialSize
                    partial.update(repeating: 0, count: group * d)
                    (partial + group * d).update(repeating: -.infinity, count: group)
                    (partial + group * (d + 1)).update(repeating: 0, count: group)
                }
            }
            // The tile's key and value rows of the item's heads, gathered as Float32: position j's
            // heads are one run of `tileRow` floats.
            let tileRow = item.keyHeads.count * d
            let keyRows = UnsafeMutablePointer<Float>.allocate(capacity: 2 * tileKeys * tileRow)
            defer { keyRows.deallocate() }
            let valueRows = keyRows + tileKeys * tileRow
            let headOffset = item.keyHeads.lowerBound * d
            var tileStart = splitStart
            while tileStart < lastKey {
                let n = min(tileKeys, lastKey - tileStart)
                for j in 0..<n {
                    let p = tileStart + j
                    // The row's element offset in the pools (the same for K and V).
                    let offset = Int(table[p / bs]) * blockElements + (p % bs) * kvRow + headOffset
                    batch.loadRow(batch.keys, at: offset, count: tileRow, into: keyRows + j * tileRow)
                    batch.loadRow(batch.values, at: offset, count: tileRow, into: valueRows + j * tileRow)
                }
                // The next tile is in another block, somewhere else in the pool: no hardware
                // prefetcher sees it coming, so a decode item (few rows: its time is the wait for
                // K/V) requests its rows now, to arrive while this tile computes. A prefill item's
                // many rows keep the core busy between tiles anyway (measured: prefetching there
                // cost 6% of prefill on AVX-512).
                let prefetchEnd = rows.count <= pagedPrefetchRows ? min(lastKey, tileStart + n + tileKeys) : 0
                for p in (tileStart + n)..<max(tileStart + n, prefetchEnd) {
                    let offset = Int(table[p / bs]) * blockElements + (p % bs) * kvRow + headOffset
                    batch.prefetchRow(batch.keys, at: offset, count: tileRow)
                    batch.prefetchRow(batch.values, at: offset, count: tileRow)
                }
                for r in rows where batch.keyCounts[r] > tileStart {
                    let keys = min(n, min(batch.keyCounts[r], splitEnd) - tileStart)
                    let position = batch.keyCounts[r] - 1  // the row's own position, for ALiBi
                    for g in item.keyHeads {
                        let partial = partials + (firstSlot[r * batch.keyHeads + g] + item.split) * partialSize
                        let acc = partial, maxima = partial + group * d, sums = maxima + group
                        let query = batch.query + r * batch.queryRowStride + g * group * d
                        let headKeys = keyRows + (g - item.keyHeads.lowerBound) * d
                        let headValues = valueRows + (g - item.keyHeads.lowerBound) * d
                        for h in 0..<group {
                            let q = query + h * d
                            let slope = batch.alibiSlopes?[g * group + h]
                            let scores = tileScores(q, keys: headKeys, rowStride: tileRow, count: keys, headDim: d,
                                                    scale: batch.scale, slope: slope, firstOffset: tileStart - position)
                            let oldMax = maxima[h]
                            let newMax = max(oldMax, VectorMath.max(scores))
                            // A row whose scores are all −Inf keeps zero weights rather than NaN.
                            let weights = AttentionMath.softmaxExp(scores - (newMax == -.infinity ? 0 : newMax))
                            let factor: Float = newMax > oldMax && oldMax > -.infinity ? Foundation.exp(oldMax - newMax) : 1
                            sums[h] = sums[h] * factor + VectorMath.sum(weights)
                            maxima[h] = newMax
                            addWeightedRows(weights, count: keys, rows: headValues, rowStride: tileRow, rescaling: acc + h * d,
                                            by: factor, headDim: d)
                        }
                    }
                }
                tileStart += n
            }
        }

        // Each (row, key/value head): O = acc / l for one split, else the splits merged in order.
        Parallel.forEachDynamicPolling(rowCount * batch.keyHeads, threads: threads) { pair in
            let row = pair / batch.keyHeads, keyHead = pair % batch.keyHeads
            let out = batch.output + row * batch.outputRowStride + keyHead * group * d
            let slots = firstSlot[pair]..<firstSlot[pair + 1]
            for h in 0..<group {
                let o = out + h * d
                if slots.count == 1 {
                    let partial = partials + slots.lowerBound * partialSize
                    o.update(from: partial + h * d, count: d)
                    VectorMath.scale(o, count: d, by: 1 / partial[group * (d + 1) + h])
                    continue
                }
                var globalMax = -Float.infinity
                for slot in slots { globalMax = max(globalMax, partials[slot * partialSize + group * d + h]) }
                o.update(repeating: 0, count: d)
                var total: Float = 0
                for slot in slots {
                    let partial = partials + slot * partialSize
                    let weight = Foundation.exp(partial[group * d + h] - globalMax)
                    total += weight * partial[group * (d + 1) + h]
                    VectorMath.addScaled(partial + h * d, weight, to: o, count: d)
                }
                VectorMath.scale(o, count: d, by: 1 / total)
            }
        }
    }

    /// Lane j < `count` (≤ 16): scale·(q·K_j) + slope·(firstOffset + j), K_j the row at
    /// `keys + j·rowStride`, with q·K_j exactly `VectorMath.dot`; lanes from `count` on are −Inf
    /// (they weigh 0). For D a multiple of 16 the 16 dot products' horizontal sums run as one
    /// butterfly (`VectorMath.sums`), which also leaves each score in its lane; other D take
    /// `dot` per key. D = 32, 64 and 128 have their own instantiation (`VectorMath.dotLanes(_:…)`),
    /// with q held in registers across the tile's keys.
    @inline(__always)
    static func tileScores(_ q: UnsafePointer<Float>, keys: UnsafePointer<Float>, rowStride: Int, count: Int, headDim d: Int,
                           scale: Float, slope: Float?, firstOffset: Int) -> TileVector {
        let lane = TileVector(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        var scores: TileVector
        switch d {
        case 32: scores = VectorMath.sums(VectorMath.dotLanes(VectorMath.Vectors<2>.self, q, rows: keys, rowStride: rowStride, count: count)) * scale
        case 64: scores = VectorMath.sums(VectorMath.dotLanes(VectorMath.Vectors<4>.self, q, rows: keys, rowStride: rowStride, count: count)) * scale
        case 128: scores = VectorMath.sums(VectorMath.dotLanes(VectorMath.Vectors<8>.self, q, rows: keys, rowStride: rowStride, count: count)) * scale
        case _ where d % VectorMath.width == 0:
            var partials = InlineArray<16, VectorMath.Vector>(repeating: VectorMath.Vector())
            for j in 0..<count { partials[j] = VectorMath.dotLanes(q, keys + j * rowStride, count: d) }
            scores = VectorMath.sums(partials) * scale
        default:
            scores = TileVector()
            for j in 0..<count { scores[j] = VectorMath.dot(q, keys + j * rowStride, count: d) * scale }
        }
        if let slope { scores += slope * (lane + Float(firstOffset)) }
        return scores.replacing(with: -.infinity, where: lane .>= Float(count))
    }

    /// acc[0..<d] ← acc·factor + Σ_{j<count} weights[j]·V_j (count ≤ 16), where V_j is the
    /// row at `rows + j·rowStride`: 64 columns at a time in registers (four 16-float vectors),
    /// then 16, then single floats, each element one FMA chain over j in order.
    @inline(__always)
    static func addWeightedRows(_ weights: TileVector, count: Int, rows: UnsafePointer<Float>, rowStride: Int,
                                rescaling acc: UnsafeMutablePointer<Float>, by factor: Float, headDim d: Int) {
        var c = 0
        while c + 64 <= d {
            addWeightedColumns(Columns<4>.self, weights, count: count, rows: rows + c, rowStride: rowStride, acc: acc + c, factor: factor)
            c += 64
        }
        while c + 16 <= d {
            addWeightedColumns(Columns<1>.self, weights, count: count, rows: rows + c, rowStride: rowStride, acc: acc + c, factor: factor)
            c += 16
        }
        while c < d {
            var sum = acc[c] * factor
            for j in 0..<count { sum = sum.addingProduct(weights[j], rows[j * rowStride + c]) }
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
