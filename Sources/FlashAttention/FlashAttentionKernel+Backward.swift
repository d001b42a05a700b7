import Foundation
import FlashCore

extension FlashAttentionKernel {
    /// Q, dO (row-major and transposed per query tile; Qᵀ multiplied by the scale), the LSE as
    /// high + low parts (see `AttentionMath.splitLogSumExp`) and D = rowsum(dO∘O) of every
    /// (sequence, query head), packed once in Float32 (memory linear in N), plus the dQ
    /// accumulator. Rows are padded to whole query tiles with zeros (LSE +Inf, so P = 0 there).
    final class BackwardPacks {
        let width: Int, tileRows: Int
        let rowOffsets: [Int]                    // first packed row of (sequence, head), s·Hq + h
        let memory: UnsafeMutablePointer<Float>
        let query, queryT, outputGradient, outputGradientT, queryGradient: UnsafeMutablePointer<Float>
        let logSumExp, logSumExpLow, rowDots: UnsafeMutablePointer<Float>
        private let capacity: Int

        init(_ problem: AttentionProblem, tiles: AttentionTiles, width: Int) {
            self.width = width
            tileRows = tiles.queryRows
            var offsets = [Int](), total = 0
            for s in 0..<problem.sequenceCount {
                for _ in 0..<problem.queryHeads {
                    offsets.append(total)
                    total += roundUp(problem.queryLengths[s], tiles.queryRows)
                }
            }
            rowOffsets = offsets
            let matrix = total * width
            let count = 5 * matrix + 3 * total
            // A reused buffer holds stale values. The dQ accumulator must start at zero; the
            // padding rows and columns must be zeros too, but when there are none (every length
            // a whole number of query tiles, D a whole number of vectors) the packing loop
            // writes every other value, and zeroing only dQ saves a pass over 4/5 of the buffer.
            (memory, capacity) = ReusableFloatBuffer.take(max(count, 1))
            let padded = width != problem.headDim || problem.queryLengths.contains { $0 % tiles.queryRows != 0 }
            if padded {
                memory.update(repeating: 0, count: max(count, 1))
            } else {
                (memory + 4 * matrix).update(repeating: 0, count: matrix)
            }
            query = memory
            queryT = query + matrix
            outputGradient = queryT + matrix
            outputGradientT = outputGradient + matrix
            queryGradient = outputGradientT + matrix
            logSumExp = queryGradient + matrix
            logSumExpLow = logSumExp + total
            rowDots = logSumExpLow + total
        }

        deinit { ReusableFloatBuffer.giveBack(memory, capacity: capacity) }
    }

    /// Per-thread scratch of the backward tile loop.
    final class BackwardScratch {
        let memory: UnsafeMutablePointer<Float>
        let keyTile, valueTile, keyGradient, valueGradient: UnsafeMutablePointer<Float> // [Bc × width]
        let scores, scoreGradients: UnsafeMutablePointer<Float>                         // [Bc × Br]
        let derivative: UnsafeMutablePointer<Float>                                     // [Br]

        init(tiles: AttentionTiles, width: Int) {
            let tile = tiles.keyColumns * width, square = tiles.keyColumns * tiles.queryRows
            let count = 4 * tile + 2 * square + tiles.queryRows
            memory = .allocate(capacity: count)
            memory.update(repeating: 0, count: count)
            keyTile = memory
            valueTile = keyTile + tile
            keyGradient = valueTile + tile
            valueGradient = keyGradient + tile
            scores = valueGradient + tile
            scoreGradients = scores + square
            derivative = scoreGradients + square
        }

        deinit { memory.deallocate() }
    }

    /// dQ, dK, dV by recomputing P tile by tile from Q, K and the forward's LSE.
    ///
    /// Work split (race-free and deterministic): when there are enough (sequence, key/value head)
    /// pairs to keep every thread busy, one item per pair walks its key tiles in order and
    /// updates dK/dV (owned) and dQ of its query heads (owned too: the pair owns the whole
    /// group). Otherwise a first pass, parallel over (pair, key tile), computes dK/dV, and a
    /// second, parallel over (sequence, query head, query tile), computes dQ. Both ways add the
    /// same tile products in the same order, so results are bit-identical for any thread count.
    static func backward(
        _ problem: AttentionProblem, output: HeadRows, logSumExp: LogSumExpRows, outputGradient: HeadRows,
        queryGradient: HeadRows, keyGradient: HeadRows, valueGradient: HeadRows
    ) {
        let tiles = problem.tiles
        let width = AttentionTiles.paddedHeadDimension(problem.headDim)
        let packs = BackwardPacks(problem, tiles: tiles, width: width)
        let d = problem.headDim, br = tiles.queryRows, bc = tiles.keyColumns
        let threads = problem.threads

        // Pack Q, dO, their transposes, LSE and D per (sequence, query head).
        Parallel.forEachDynamic(problem.sequenceCount * problem.queryHeads, threads: threads) { index in
            let s = index / problem.queryHeads, h = index % problem.queryHeads
            let base = packs.rowOffsets[index]
            let staging = UnsafeMutablePointer<Float>.allocate(capacity: d)
            defer { staging.deallocate() }
            let nq = problem.queryLengths[s]
            for i in 0..<roundUp(nq, br) {
                let row = base + i
                guard i < nq else { packs.logSumExp[row] = .infinity; continue }
                let token = problem.queryStarts[s] + i
                if i + prefetchDistance < nq {
                    let ahead = token + prefetchDistance
                    problem.query.prefetch(at: problem.query.offset(sequence: s, token: ahead, head: h), count: d)
                    outputGradient.prefetch(at: outputGradient.offset(sequence: s, token: ahead, head: h), count: d)
                    output.prefetch(at: output.offset(sequence: s, token: ahead, head: h), count: d)
                }
                let q = packs.query + row * width, dO = packs.outputGradient + row * width
                problem.query.load(at: problem.query.offset(sequence: s, token: token, head: h), count: d, into: q)
                outputGradient.load(at: outputGradient.offset(sequence: s, token: token, head: h), count: d, into: dO)
                output.load(at: output.offset(sequence: s, token: token, head: h), count: d, into: staging)
                packs.rowDots[row] = VectorMath.dot(dO, staging, count: d)
                let lse = logSumExp.load(sequence: s, token: token, head: h)
                packs.logSumExp[row] = lse.high == -.infinity ? .infinity : lse.high
                packs.logSumExpLow[row] = lse.low
                let tileBase = (base + i / br * br) * width, column = i % br
                for x in 0..<d {
                    packs.queryT[tileBase + x * br + column] = q[x] * problem.scale
                    packs.outputGradientT[tileBase + x * br + column] = dO[x]
                }
            }
            if let traffic = problem.traffic {
                traffic.add(.query, read: nq * d * problem.queryElementBytes)
                traffic.add(.outputGradient, read: nq * d * outputGradient.tensor.elementType.byteSize)
                traffic.add(.output, read: nq * d * output.tensor.elementType.byteSize)
                traffic.add(.logSumExp, read: nq * (logSumExp.residual == nil ? 4 : 8))
            }
        }

        let pairs = problem.sequenceCount * problem.keyHeads
        let uniform = Set(problem.queryLengths).count <= 1 && Set(problem.keyLengths).count <= 1
        let fused = threads == 1 || pairs >= 4 * threads || (uniform && pairs % threads == 0)
        let keyTileCounts = problem.keyLengths.map { ($0 + bc - 1) / bc }
        let queryTileCounts = problem.queryLengths.map { ($0 + br - 1) / br }

        /// dK/dV (and dQ when `fused`) of key tile `kt` of pair (s, kvh).
        func keyTileWork(_ s: Int, _ kvh: Int, _ kt: Int, _ scratch: BackwardScratch, includeQuery: Bool) {
            let j0 = kt * bc, columns = min(bc, problem.keyLengths[s] - j0)
            packRows(problem.key, sequence: s, start: problem.keyStarts[s], first: j0, count: columns, head: kvh,
                     headDim: d, width: width, into: scratch.keyTile)
            packRows(problem.value, sequence: s, start: problem.keyStarts[s], first: j0, count: columns, head: kvh,
                     headDim: d, width: width, into: scratch.valueTile)
            scratch.keyGradient.update(repeating: 0, count: 2 * bc * width)
            problem.traffic?.add(.key, read: columns * d * problem.keyElementBytes)
            problem.traffic?.add(.value, read: columns * d * problem.valueElementBytes)
            for h in kvh * problem.groupSize..<(kvh + 1) * problem.groupSize {
                for qt in 0..<queryTileCounts[s] {
                    let i0 = qt * br, i1 = min(problem.queryLengths[s], i0 + br)
                    guard problem.tileVisible(sequence: s, queries: i0, i1, keys: j0, j0 + columns) else { continue }
                    backwardStep(problem, packs: packs, scratch: scratch, tiles: tiles, sequence: s, head: h,
                                 queryTile: qt, keyStart: j0, keyCount: columns, updateKeyValue: true, updateQuery: includeQuery)
                }
            }
            problem.traffic?.add(.keyGradient, written: columns * d * 4)
            problem.traffic?.add(.valueGradient, written: columns * d * 4)
            for j in 0..<columns {
                let token = problem.keyStarts[s] + j0 + j
                keyGradient.store(scratch.keyGradient + j * width, count: d, at: keyGradient.offset(sequence: s, token: token, head: kvh))
                valueGradient.store(scratch.valueGradient + j * width, count: d, at: valueGradient.offset(sequence: s, token: token, head: kvh))
            }
        }

        let pool = ScratchPool { BackwardScratch(tiles: tiles, width: width) }
        if fused {
            Parallel.forEachDynamic(pairs, threads: threads) { index in
                let s = index / problem.keyHeads, kvh = index % problem.keyHeads
                pool.withScratch { scratch in
                    for kt in 0..<keyTileCounts[s] { keyTileWork(s, kvh, kt, scratch, includeQuery: true) }
                }
            }
        } else {
            var keyItems = [(Int, Int, Int)]()
            for s in 0..<problem.sequenceCount {
                for kvh in 0..<problem.keyHeads { for kt in 0..<keyTileCounts[s] { keyItems.append((s, kvh, kt)) } }
            }
            Parallel.forEachDynamic(keyItems.count, threads: threads) { index in
                let (s, kvh, kt) = keyItems[index]
                pool.withScratch { keyTileWork(s, kvh, kt, $0, includeQuery: false) }
            }
            var queryItems = [(Int, Int, Int)]()
            for s in 0..<problem.sequenceCount {
                for h in 0..<problem.queryHeads { for qt in 0..<queryTileCounts[s] { queryItems.append((s, h, qt)) } }
            }
            Parallel.forEachDynamic(queryItems.count, threads: threads) { index in
                let (s, h, qt) = queryItems[index]
                pool.withScratch { scratch in
                    let i0 = qt * br, i1 = min(problem.queryLengths[s], i0 + br), kvh = h / problem.groupSize
                    for kt in 0..<keyTileCounts[s] {
                        let j0 = kt * bc, columns = min(bc, problem.keyLengths[s] - j0)
                        guard problem.tileVisible(sequence: s, queries: i0, i1, keys: j0, j0 + columns) else { continue }
                        packRows(problem.key, sequence: s, start: problem.keyStarts[s], first: j0, count: columns, head: kvh,
                                 headDim: d, width: width, into: scratch.keyTile)
                        packRows(problem.value, sequence: s, start: problem.keyStarts[s], first: j0, count: columns, head: kvh,
                                 headDim: d, width: width, into: scratch.valueTile)
                        problem.traffic?.add(.key, read: columns * d * problem.keyElementBytes)
                        problem.traffic?.add(.value, read: columns * d * problem.valueElementBytes)
                        backwardStep(problem, packs: packs, scratch: scratch, tiles: tiles, sequence: s, head: h,
                                     queryTile: qt, keyStart: j0, keyCount: columns, updateKeyValue: false, updateQuery: true)
                    }
                }
            }
        }

        // dQ out of its accumulator.
        Parallel.forEach(problem.sequenceCount * problem.queryHeads, threads: threads) { index in
            let s = index / problem.queryHeads, h = index % problem.queryHeads
            problem.traffic?.add(.queryGradient, written: problem.queryLengths[s] * d * 4)
            for i in 0..<problem.queryLengths[s] {
                queryGradient.store(packs.queryGradient + (packs.rowOffsets[index] + i) * width, count: d,
                                    at: queryGradient.offset(sequence: s, token: problem.queryStarts[s] + i, head: h))
            }
        }
    }

    /// One (key tile, query tile) step of the backward, in the transposed orientation:
    /// Sᵀ = K·Qᵀ, Pᵀ = e^((Sᵀ − LSE) − LSE_low), dPᵀ = V·dOᵀ, dSᵀ = Pᵀ∘(dPᵀ − D)·∂s/∂(q·k); then
    /// dV += P_dropᵀ·dO, dK += dSᵀ·Q (into the scratch tiles) and dQ += dS·K (into the packs).
    @inline(__always)
    static func backwardStep(
        _ problem: AttentionProblem, packs: BackwardPacks, scratch: BackwardScratch, tiles: AttentionTiles,
        sequence s: Int, head h: Int, queryTile qt: Int, keyStart j0: Int, keyCount columns: Int,
        updateKeyValue: Bool, updateQuery: Bool
    ) {
        typealias Vector = SIMD16<Float>
        let br = tiles.queryRows, width = packs.width
        let i0 = qt * br, queryCount = min(br, problem.queryLengths[s] - i0)
        let rowBase = packs.rowOffsets[s * problem.queryHeads + h] + i0
        let keyRows = roundUp(columns, 8)
        if let traffic = problem.traffic {
            // Float32 packs: Qᵀ and dOᵀ always, Q and dO rows for dK/dV, LSE and D per row,
            // the dQ accumulator read and written.
            let tile = br * problem.headDim * 4, copies = updateKeyValue ? 2 : 1
            traffic.add(.query, read: copies * tile)
            traffic.add(.outputGradient, read: copies * tile)
            traffic.add(.logSumExp, read: br * 8)
            traffic.add(.output, read: br * 4)
            if updateQuery { traffic.add(.queryGradient, read: tile, written: tile) }
        }
        TileMultiply.multiply(m: keyRows, n: br, k: width, a: scratch.keyTile, lda: width, transposedA: false,
                              b: packs.queryT + rowBase * width, ldb: br, c: scratch.scores, ldc: br, accumulate: false)
        TileMultiply.multiply(m: keyRows, n: br, k: width, a: scratch.valueTile, lda: width, transposedA: false,
                              b: packs.outputGradientT + rowBase * width, ldb: br, c: scratch.scoreGradients, ldc: br, accumulate: false)
        let fully = problem.tileFullyVisible(sequence: s, queries: i0, i0 + queryCount, keys: j0, j0 + columns)
        let lse = packs.logSumExp + rowBase, lseLow = packs.logSumExpLow + rowBase, rowDots = packs.rowDots + rowBase
        let dropout = problem.dropoutProbability > 0
        for jr in 0..<columns {
            let line = scratch.scores + jr * br, gradientLine = scratch.scoreGradients + jr * br
            problem.prepareLogits(line, count: queryCount, sequence: s, head: h, query: i0, key: j0 + jr,
                                  line: .alongQueries, fullyVisible: fully, derivative: scratch.derivative)
            if dropout {
                problem.applyDropout(gradientLine, count: queryCount, sequence: s, head: h, query: i0, key: j0 + jr, line: .alongQueries)
            }
            var c = 0
            while c < br {
                // (s − high) is exact for the logits that matter, so P keeps its low bits even
                // when the logits are ~10³ (see `AttentionMath.splitLogSumExp`).
                let p = AttentionMath.softmaxExp((VectorMath.load(line + c, count: 16) - VectorMath.load(lse + c, count: 16))
                                                 - VectorMath.load(lseLow + c, count: 16))
                let dp = VectorMath.load(gradientLine + c, count: 16)
                VectorMath.store(p * (dp - VectorMath.load(rowDots + c, count: 16)) * VectorMath.load(scratch.derivative + c, count: 16), to: gradientLine + c, count: 16)
                VectorMath.store(p, to: line + c, count: 16)
                c += 16
            }
            if dropout {
                problem.applyDropout(line, count: queryCount, sequence: s, head: h, query: i0, key: j0 + jr, line: .alongQueries)
            }
        }
        if updateKeyValue {
            TileMultiply.multiply(m: keyRows, n: width, k: br, a: scratch.scores, lda: br, transposedA: false,
                                  b: packs.outputGradient + rowBase * width, ldb: width, c: scratch.valueGradient, ldc: width, accumulate: true)
            TileMultiply.multiply(m: keyRows, n: width, k: br, a: scratch.scoreGradients, lda: br, transposedA: false,
                                  b: packs.query + rowBase * width, ldb: width, c: scratch.keyGradient, ldc: width, accumulate: true)
        }
        if updateQuery {
            TileMultiply.multiply(m: br, n: width, k: columns, a: scratch.scoreGradients, lda: br, transposedA: true,
                                  b: scratch.keyTile, ldb: width, c: packs.queryGradient + rowBase * width, ldc: width, accumulate: true)
        }
    }
}
