import FlashCore

/// FlashAttention (Dao et al. 2022, FlashAttention-2 work split): attention computed tile by
/// tile with an online softmax, so only O, the per-row LSE and tile-sized scratch are ever
/// stored: extra memory is linear in N, and the N×N matrices never leave the caches.
///
/// Tiles are processed transposed: a key tile times the packed Qᵀ tile gives Sᵀ (keys × queries),
/// so the softmax statistics of 16 queries sit in one vector and every step of the online
/// softmax (max, exp, sum, rescale) is vectorised across queries.
enum FlashAttentionKernel {
    @inline(__always)
    static func roundUp(_ value: Int, _ multiple: Int) -> Int { (value + multiple - 1) / multiple * multiple }

    /// Per-thread scratch of the forward (and decode) tile loop, sized for `rows` stacked query
    /// rows (padded to 16) against tiles of `keyColumns` keys of padded width `width`.
    final class ForwardScratch {
        let rows: Int, keyColumns: Int, width: Int
        let memory: UnsafeMutablePointer<Float>
        let queryT: UnsafeMutablePointer<Float>      // [width × rows]
        let keyTile: UnsafeMutablePointer<Float>     // [keyColumns × width]
        let valueTile: UnsafeMutablePointer<Float>   // [keyColumns × width]
        let scores: UnsafeMutablePointer<Float>      // Sᵀ then Pᵀ, [keyColumns × rows]
        let accumulator: UnsafeMutablePointer<Float> // unnormalised O, [rows × width]
        let maxima: UnsafeMutablePointer<Float>      // running row max m, [rows]
        let sums: UnsafeMutablePointer<Float>        // running row sum l, [rows]
        let rescale: UnsafeMutablePointer<Float>     // e^(m_old − m_new) of the current tile, [rows]
        let queryRows: UnsafeMutablePointer<Float>   // scale·Q row-major for the narrow path, [rows × width]

        init(rows: Int, keyColumns: Int, width: Int) {
            self.rows = rows
            self.keyColumns = keyColumns
            self.width = width
            let sizes = [width * rows, keyColumns * width, keyColumns * width, keyColumns * rows, rows * width, rows, rows, rows, rows * width]
            memory = .allocate(capacity: sizes.reduce(0, +))
            memory.update(repeating: 0, count: sizes.reduce(0, +))
            var p = memory
            var parts = [UnsafeMutablePointer<Float>]()
            for size in sizes { parts.append(p); p += size }
            (queryT, keyTile, valueTile, scores, accumulator, maxima, sums, rescale, queryRows) =
                (parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], parts[7], parts[8])
        }

        deinit { memory.deallocate() }
    }

    /// K and V of every (sequence, key/value head) converted once to contiguous Float32 rows of
    /// the padded width, rows padded to a multiple of 8 with zeros (memory linear in N: one copy
    /// of K and V). The forward's query tiles all read these instead of converting K/V tiles
    /// again per query tile; contiguous rows also avoid the cache-set conflicts that the
    /// power-of-two token strides of [B, N, H, D] tensors cause when a tile is read in place.
    final class PackedKeyValues {
        let width: Int
        let rowOffsets: [Int]                    // first packed row of (sequence, kv head), s·Hkv + kvh
        let keys: UnsafeMutablePointer<Float>
        let values: UnsafeMutablePointer<Float>
        private let capacity: Int

        init(_ problem: AttentionProblem, width: Int) {
            self.width = width
            var offsets = [Int](), total = 0
            for s in 0..<problem.sequenceCount {
                for _ in 0..<problem.keyHeads {
                    offsets.append(total)
                    total += roundUp(problem.keyLengths[s], 8)
                }
            }
            rowOffsets = offsets
            (keys, capacity) = ReusableFloatBuffer.take(max(2 * total * width, 1))
            values = keys + total * width
            let d = problem.headDim
            Parallel.forEachDynamic(problem.sequenceCount * problem.keyHeads, threads: problem.threads) { [keys, values] pair in
                let s = pair / problem.keyHeads, kvh = pair % problem.keyHeads
                let nk = problem.keyLengths[s], base = offsets[pair] * width
                // Zeros only where packRows writes nothing: every row's padding columns when
                // width > D, else just the rows past nk up to the multiple of 8.
                let zeroFrom = width == d ? nk * width : 0, zeroCount = roundUp(nk, 8) * width - zeroFrom
                (keys + base + zeroFrom).update(repeating: 0, count: zeroCount)
                (values + base + zeroFrom).update(repeating: 0, count: zeroCount)
                packRows(problem.key, sequence: s, start: problem.keyStarts[s], first: 0, count: nk, head: kvh,
                         headDim: d, width: width, into: keys + base)
                packRows(problem.value, sequence: s, start: problem.keyStarts[s], first: 0, count: nk, head: kvh,
                         headDim: d, width: width, into: values + base)
                problem.traffic?.add(.key, read: nk * d * problem.keyElementBytes)
                problem.traffic?.add(.value, read: nk * d * problem.valueElementBytes)
            }
        }

        deinit { ReusableFloatBuffer.giveBack(keys, capacity: capacity) }
    }

    /// How many rows ahead the row packing asks for its input (`HeadRows.prefetch`).
    static let prefetchDistance = 4

    /// Copies rows `first`..<`first+count` of head `head` into a [count × width] Float32 tile
    /// (columns past headDim are left as they are: callers zero them).
    @inline(__always)
    static func packRows(_ rows: HeadRows, sequence s: Int, start: Int, first: Int, count: Int, head: Int,
                         headDim: Int, width: Int, into tile: UnsafeMutablePointer<Float>) {
        for r in 0..<count {
            if r + prefetchDistance < count {
                rows.prefetch(at: rows.offset(sequence: s, token: start + first + r + prefetchDistance, head: head), count: headDim)
            }
            rows.load(at: rows.offset(sequence: s, token: start + first + r, head: head), count: headDim, into: tile + r * width)
        }
    }

    /// Copies rows, multiplied by `scale`, into a transposed [width × stride] tile at column
    /// `column` onwards, using `staging` (headDim floats) for the conversion. Rows are asked for
    /// `prefetchDistance` ahead, as in `packRows`: the forward's Q rows, at the token stride of
    /// a [B, N, H, D] tensor, stalled on each row's first load (~3% of a forward at N = 2048).
    @inline(__always)
    static func packColumns(_ rows: HeadRows, sequence s: Int, start: Int, first: Int, count: Int, head: Int,
                            headDim: Int, stride: Int, column: Int, scale: Float, into tile: UnsafeMutablePointer<Float>,
                            staging: UnsafeMutablePointer<Float>) {
        for r in 0..<count {
            if r + prefetchDistance < count {
                rows.prefetch(at: rows.offset(sequence: s, token: start + first + r + prefetchDistance, head: head), count: headDim)
            }
            rows.load(at: rows.offset(sequence: s, token: start + first + r, head: head), count: headDim, into: staging)
            for d in 0..<headDim { tile[d * stride + column + r] = staging[d] * scale }
        }
    }
}
