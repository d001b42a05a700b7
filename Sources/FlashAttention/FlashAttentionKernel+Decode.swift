import Foundation
import FlashCore

extension FlashAttentionKernel {
    /// Keys per split of the decode kernel: a fixed count (never derived from the thread
    /// count) so that results do not depend on how many threads run.
    static let decodeSplitKeys = 1024

    /// Decode (KV-cache inference): few queries against a long cache. The keys of each
    /// (sequence, key/value head) are split into chunks of `decodeSplitKeys` that run in
    /// parallel (split-KV); each computes an unnormalised partial output with its own row max
    /// and sum, and the partials are merged through their log-sum-exps:
    /// O = Σ_c e^(m_c − M)·acc_c / Σ_c e^(m_c − M)·l_c, LSE = M + log Σ_c e^(m_c − M)·l_c.
    /// The query heads of a group are stacked as rows of one tile, so each K/V tile is read
    /// once per key/value head rather than once per query head.
    static func decode(_ problem: AttentionProblem, output: HeadRows, logSumExp: LogSumExpRows) {
        let tiles = AttentionTiles.forHeadDimension(problem.headDim)
        let width = AttentionTiles.paddedHeadDimension(problem.headDim)
        let group = problem.groupSize
        let tilesPerSplit = max(1, decodeSplitKeys / tiles.keyColumns)
        let maxRows = roundUp(max(1, group * (problem.queryLengths.max() ?? 0)), 16)
        var items = [(sequence: Int, keyHead: Int, split: Int)]()
        var firstItem = [Int]()
        for s in 0..<problem.sequenceCount {
            let keyTiles = (problem.keyLengths[s] + tiles.keyColumns - 1) / tiles.keyColumns
            let splits = max(1, (keyTiles + tilesPerSplit - 1) / tilesPerSplit)
            for kvh in 0..<problem.keyHeads {
                firstItem.append(items.count)
                for split in 0..<splits { items.append((s, kvh, split)) }
            }
        }
        firstItem.append(items.count)
        let partialSize = maxRows * (width + 2)
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: max(items.count * partialSize, 1))
        defer { partials.deallocate() }
        Parallel.forEachDynamicPolling(items.count, threads: problem.threads) { index in
            let (s, kvh, split) = items[index]
            let nq = problem.queryLengths[s]
            let rows = roundUp(max(1, group * nq), 16)
            let scratch = ForwardScratch(rows: rows, keyColumns: tiles.keyColumns, width: width)
            let keyTiles = (problem.keyLengths[s] + tiles.keyColumns - 1) / tiles.keyColumns
            let first = split * tilesPerSplit
            accumulate(problem, sequence: s, heads: kvh * group..<(kvh + 1) * group, queryStart: 0, queryCount: nq,
                       keyTiles: first..<min(keyTiles, first + tilesPerSplit), tiles: tiles, scratch: scratch)
            let partial = partials + index * partialSize
            partial.update(from: scratch.accumulator, count: rows * width)
            (partial + maxRows * width).update(from: scratch.maxima, count: rows)
            (partial + maxRows * (width + 1)).update(from: scratch.sums, count: rows)
        }
        Parallel.forEachDynamicPolling(problem.sequenceCount * problem.keyHeads, threads: problem.threads) { pair in
            let s = pair / problem.keyHeads, kvh = pair % problem.keyHeads
            let nq = problem.queryLengths[s]
            let row = UnsafeMutablePointer<Float>.allocate(capacity: width)
            defer { row.deallocate() }
            for r in 0..<group * nq {
                let h = kvh * group + r / nq, token = problem.queryStarts[s] + r % nq
                var globalMax = -Float.infinity
                for item in firstItem[pair]..<firstItem[pair + 1] {
                    globalMax = max(globalMax, partials[item * partialSize + maxRows * width + r])
                }
                row.update(repeating: 0, count: width)
                var total: Float = 0
                if globalMax > -.infinity {
                    for item in firstItem[pair]..<firstItem[pair + 1] {
                        let partial = partials + item * partialSize
                        let weight = Foundation.exp(partial[maxRows * width + r] - globalMax)
                        total += weight * partial[maxRows * (width + 1) + r]
                        VectorMath.addScaled(partial + r * width, weight, to: row, count: width)
                    }
                }
                if total > 0 {
                    VectorMath.scale(row, count: width, by: 1 / total)
                } else {
                    row.update(repeating: 0, count: width)
                }
                output.store(row, count: problem.headDim, at: output.offset(sequence: s, token: token, head: h))
                logSumExp.store(maximum: globalMax, sum: total, sequence: s, token: token, head: h)
            }
            problem.traffic?.add(.output, written: group * nq * problem.headDim * 4)
            problem.traffic?.add(.logSumExp, written: group * nq * 8)
        }
    }
}
