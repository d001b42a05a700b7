import Foundation
import FlashCore

extension FlashAttentionKernel {
    /// Forward: one work item per (sequence, query head, query tile), dynamically scheduled,
    /// most expensive first (causal tiles near the bottom see the most keys).
    static func forward(_ problem: AttentionProblem, output: HeadRows, logSumExp: LogSumExpRows) {
        let tiles = problem.tiles
        let width = AttentionTiles.paddedHeadDimension(problem.headDim)
        var items = [(sequence: Int, head: Int, tile: Int, cost: Int)]()
        for s in 0..<problem.sequenceCount {
            let nq = problem.queryLengths[s], nk = problem.keyLengths[s]
            let costs = (0..<(nq + tiles.queryRows - 1) / tiles.queryRows).map { qt in
                let i0 = qt * tiles.queryRows, i1 = min(nq, i0 + tiles.queryRows)
                return 1 + (0..<(nk + tiles.keyColumns - 1) / tiles.keyColumns).filter { kt in
                    problem.tileVisible(sequence: s, queries: i0, i1, keys: kt * tiles.keyColumns, min(nk, (kt + 1) * tiles.keyColumns))
                }.count
            }
            for h in 0..<problem.queryHeads {
                for (qt, cost) in costs.enumerated() { items.append((s, h, qt, cost)) }
            }
        }
        // Most expensive first; ties keep (sequence, head, tile) order so that consecutive items
        // share K/V tiles in the caches.
        items = items.enumerated().sorted { ($0.element.cost, -$0.offset) > ($1.element.cost, -$1.offset) }.map(\.element)
        let packed = PackedKeyValues(problem, width: width)
        let fullTiles = ScratchPool { ForwardScratch(rows: tiles.queryRows, keyColumns: tiles.keyColumns, width: width) }
        Parallel.forEachDynamic(items.count, threads: problem.threads) { index in
            let item = items[index]
            let i0 = item.tile * tiles.queryRows
            let rows = min(tiles.queryRows, problem.queryLengths[item.sequence] - i0)
            if roundUp(rows, 16) == tiles.queryRows {
                fullTiles.withScratch { forwardItem(problem, item.sequence, item.head, i0, rows, tiles, packed, output, logSumExp, $0) }
            } else {
                let scratch = ForwardScratch(rows: roundUp(rows, 16), keyColumns: tiles.keyColumns, width: width)
                forwardItem(problem, item.sequence, item.head, i0, rows, tiles, packed, output, logSumExp, scratch)
            }
        }
    }

    /// One query tile of one head: the tile loop, then O = acc/l and LSE = m + log l (split
    /// into the Float32 LSE and its rounding error).
    private static func forwardItem(
        _ problem: AttentionProblem, _ s: Int, _ h: Int, _ i0: Int, _ rows: Int, _ tiles: AttentionTiles,
        _ packed: PackedKeyValues, _ output: HeadRows, _ logSumExp: LogSumExpRows, _ scratch: ForwardScratch
    ) {
        let width = scratch.width
        let keyTileCount = (problem.keyLengths[s] + tiles.keyColumns - 1) / tiles.keyColumns
        accumulate(problem, sequence: s, heads: h..<h + 1, queryStart: i0, queryCount: rows,
                   keyTiles: 0..<keyTileCount, tiles: tiles, scratch: scratch, packed: packed)
        for r in 0..<rows {
            let sum = scratch.sums[r]
            let row = scratch.accumulator + r * width
            let token = problem.queryStarts[s] + i0 + r
            if sum == 0 {
                row.update(repeating: 0, count: width)
            } else {
                VectorMath.scale(row, count: width, by: 1 / sum)
            }
            logSumExp.store(maximum: scratch.maxima[r], sum: sum, sequence: s, token: token, head: h)
            output.store(row, count: problem.headDim, at: output.offset(sequence: s, token: token, head: h))
        }
        problem.traffic?.add(.output, written: rows * problem.headDim * 4)
        problem.traffic?.add(.logSumExp, written: rows * 8)
    }

    /// Up to this many stacked rows, `accumulate` uses row dot products instead of the tile multiply.
    static let narrowRows = 1

    /// The tile loop shared by the forward and decode kernels: for the stacked rows
    /// (head, query) of `heads` × [queryStart, queryStart + queryCount) (all heads share one
    /// key/value head), runs the online softmax over the visible key tiles of `keyTiles` and
    /// leaves the unnormalised output, row max and row sum in `scratch`.
    ///
    /// Invariant after each tile: accumulator[r] = Σ_j e^(s_rj − m_r)·v_j and
    /// sums[r] = Σ_j e^(s_rj − m_r) over the keys seen so far, m_r = maxima[r]. A new tile with
    /// a larger max rescales both by e^(m_old − m_new). Rows with no visible key keep m = −Inf;
    /// their exponentials are taken against 0 instead so that they stay 0 rather than NaN.
    static func accumulate(
        _ problem: AttentionProblem, sequence s: Int, heads: Range<Int>, queryStart i0: Int, queryCount: Int,
        keyTiles: Range<Int>, tiles: AttentionTiles, scratch: ForwardScratch, packed: PackedKeyValues? = nil
    ) {
        typealias Vector = SIMD16<Float>
        let d = problem.headDim, width = scratch.width, stacked = heads.count * queryCount
        let rows = scratch.rows
        let keyHead = heads.lowerBound / problem.groupSize
        let nk = problem.keyLengths[s]
        // scale·Qᵀ of the stacked rows; the padding columns stay zero.
        for (index, h) in heads.enumerated() {
            packColumns(problem.query, sequence: s, start: problem.queryStarts[s], first: i0, count: queryCount, head: h,
                        headDim: d, stride: rows, column: index * queryCount, scale: problem.scale,
                        into: scratch.queryT, staging: scratch.accumulator)
        }
        // With few stacked rows (decode) a 16-wide Qᵀ tile would be mostly padding: such tiles
        // take dot products and axpys on rows instead, which read K and V once at no waste.
        let narrow = stacked <= narrowRows
        if narrow {
            for r in 0..<stacked {
                for d in 0..<d { scratch.queryRows[r * width + d] = scratch.queryT[d * rows + r] }
            }
        }
        var keyBytes = 0, valueBytes = 0
        defer {
            if let traffic = problem.traffic {
                traffic.add(.query, read: stacked * d * problem.queryElementBytes)
                traffic.add(.key, read: keyBytes)
                traffic.add(.value, read: valueBytes)
            }
        }
        scratch.maxima.update(repeating: -.infinity, count: rows)
        scratch.sums.update(repeating: 0, count: rows)
        scratch.accumulator.update(repeating: 0, count: rows * width)
        let vectors = rows / 16
        let keyInPlace = problem.key.readableInPlace(headDim: d, width: width)
        let valueInPlace = problem.value.readableInPlace(headDim: d, width: width)
        for kt in keyTiles {
            let j0 = kt * tiles.keyColumns
            let columns = min(tiles.keyColumns, nk - j0)
            guard problem.tileVisible(sequence: s, queries: i0, i0 + queryCount, keys: j0, j0 + columns) else { continue }
            let fully = problem.tileFullyVisible(sequence: s, queries: i0, i0 + queryCount, keys: j0, j0 + columns)
            // K/V tiles: from the packed copy when the caller made one (Float32); else Float32 K/V
            // with unit stride along D are read in place (the micro-kernel takes any row stride)
            // and others are converted into the scratch tiles. The K operand spans whole 8-row
            // blocks, so a ragged last tile is never read in place.
            keyBytes += columns * d * (packed == nil ? problem.keyElementBytes : 4)
            valueBytes += columns * d * (packed == nil ? problem.valueElementBytes : 4)
            var keyTile = UnsafePointer(scratch.keyTile), keyStride = width
            var valueTile = UnsafePointer(scratch.valueTile), valueStride = width
            if let packed {
                let row = packed.rowOffsets[s * problem.keyHeads + keyHead] + j0
                keyTile = UnsafePointer(packed.keys + row * width)
                valueTile = UnsafePointer(packed.values + row * width)
            } else {
                let start = problem.keyStarts[s] + j0
                if keyInPlace && (narrow || columns % 8 == 0) {
                    keyTile = problem.key.floatPointer(at: problem.key.offset(sequence: s, token: start, head: keyHead))
                    keyStride = problem.key.tokenStride
                } else {
                    packRows(problem.key, sequence: s, start: problem.keyStarts[s], first: j0, count: columns, head: keyHead,
                             headDim: d, width: width, into: scratch.keyTile)
                }
                if valueInPlace {
                    valueTile = problem.value.floatPointer(at: problem.value.offset(sequence: s, token: start, head: keyHead))
                    valueStride = problem.value.tokenStride
                } else {
                    packRows(problem.value, sequence: s, start: problem.keyStarts[s], first: j0, count: columns, head: keyHead,
                             headDim: d, width: width, into: scratch.valueTile)
                }
            }
            if narrow {
                for jr in 0..<columns {
                    for r in 0..<stacked {
                        scratch.scores[jr * rows + r] = VectorMath.dot(scratch.queryRows + r * width, keyTile + jr * keyStride, count: width)
                    }
                }
            } else {
                // Sᵀ = K_tile · Qᵀ (rows past `columns` are computed from stale data and ignored),
                // for the stacked query columns only, in whole native vectors: decode's few stacked
                // rows (a GQA group) cost one vector of columns, not the tile's 16.
                TileMultiply.multiply(m: roundUp(columns, 8), n: min(rows, roundUp(stacked, TileMultiply.lanes)), k: width,
                                      a: keyTile, lda: keyStride, transposedA: false,
                                      b: scratch.queryT, ldb: rows, c: scratch.scores, ldc: rows, accumulate: false)
            }
            // Sᵀ holds scale·q·k already (the scale is folded into Qᵀ): only masks and elementwise
            // terms need a pass over the logits; padding rows (past `stacked`) become −Inf.
            let logitPass = !(fully && !problem.hasElementwiseTerms)
            if logitPass || stacked < rows {
                for jr in 0..<columns {
                    let line = scratch.scores + jr * rows
                    if logitPass {
                        for (index, h) in heads.enumerated() {
                            problem.prepareLogits(line + index * queryCount, count: queryCount, sequence: s, head: h,
                                                  query: i0, key: j0 + jr, line: .alongQueries, fullyVisible: fully)
                        }
                    }
                    if stacked < rows { (line + stacked).update(repeating: -.infinity, count: rows - stacked) }
                }
            }
            for c in 0..<vectors {
                let offset = c * 16
                let oldMax = VectorMath.load(scratch.maxima + offset, count: 16)
                var newMax = oldMax
                for jr in 0..<columns {
                    newMax = VectorMath.maximum(newMax, VectorMath.load(scratch.scores + jr * rows + offset, count: 16))
                }
                let safeMax = newMax.replacing(with: 0, where: newMax .== -.infinity)
                let rescale = VectorMath.exp(oldMax - safeMax)
                var sum = Vector()
                for jr in 0..<columns {
                    let p = AttentionMath.softmaxExp(VectorMath.load(scratch.scores + jr * rows + offset, count: 16) - safeMax)
                    VectorMath.store(p, to: scratch.scores + jr * rows + offset, count: 16)
                    sum += p
                }
                VectorMath.store(VectorMath.load(scratch.sums + offset, count: 16) * rescale + sum, to: scratch.sums + offset, count: 16)
                VectorMath.store(newMax, to: scratch.maxima + offset, count: 16)
                VectorMath.store(rescale, to: scratch.rescale + offset, count: 16)
            }
            for r in 0..<stacked where scratch.rescale[r] != 1 {
                VectorMath.scale(scratch.accumulator + r * width, count: width, by: scratch.rescale[r])
            }
            if problem.dropoutProbability > 0 {
                for jr in 0..<columns {
                    for (index, h) in heads.enumerated() {
                        problem.applyDropout(scratch.scores + jr * rows + index * queryCount, count: queryCount,
                                             sequence: s, head: h, query: i0, key: j0 + jr, line: .alongQueries)
                    }
                }
            }
            if narrow {
                for jr in 0..<columns {
                    for r in 0..<stacked where scratch.scores[jr * rows + r] != 0 {
                        VectorMath.addScaled(valueTile + jr * valueStride, scratch.scores[jr * rows + r],
                                                to: scratch.accumulator + r * width, count: width)
                    }
                }
            } else {
                // O += P·V_tile, with P read transposed from the Pᵀ tile, for the stacked rows only
                // (whole 8-row blocks; every element's sum runs over the keys in order either way).
                TileMultiply.multiply(m: min(rows, roundUp(stacked, 8)), n: width, k: columns, a: scratch.scores, lda: rows,
                                      transposedA: true, b: valueTile, ldb: valueStride, c: scratch.accumulator, ldc: width,
                                      accumulate: true)
            }
        }
    }
}
