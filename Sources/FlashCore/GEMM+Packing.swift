/// Packing: copies a block of op(B) (and the last, partial panel of op(A), or every panel of a
/// transposed A) into the panel layout the micro-kernel reads with unit stride, zero-padding
/// the last panel so ragged edges need no special kernel.
extension GEMM {
    /// Copies the last, partial row panel of op(A) (`rows` < mr rows × `depth` steps, from
    /// the panel's origin) into an `mr`-row panel whose missing rows are zeros: step p holds
    /// the mr values op(A)[r, p].
    static func packEdgePanel(
        transposed: Bool, _ a: UnsafePointer<Float>, lda: Int,
        rows: Int, depth: Int, into panel: UnsafeMutablePointer<Float>
    ) {
        let mr = GEMMBlocking.mr
        for p in 0..<depth {
            for r in 0..<mr {
                panel[p * mr + r] = r < rows ? (transposed ? a[p * lda + r] : a[r * lda + p]) : 0
            }
        }
    }

    /// Packs a depth slice of a transposed A (stored k×m: op(A)'s `rows` × `depth` block, from
    /// its origin) into consecutive `mr`-row panels of `mr · depth` floats, the last one
    /// zero-padded, as the micro-kernel reads them. Read in place, a panel would walk `depth`
    /// rows of A at a stride of `lda` floats, which for a power-of-two `lda` crowds a few L1
    /// sets; the weight-gradient products Xᵀ·dY ran ~1.6× slower that way than on a transposed
    /// copy of X. Here A is read in strips of 16 of its rows, panel after panel, so each line
    /// is fetched once and the panels' lines are written whole.
    static func packTransposedA(
        _ a: UnsafePointer<Float>, lda: Int, rows: Int, depth: Int, into panels: UnsafeMutablePointer<Float>
    ) {
        let mr = GEMMBlocking.mr
        let fullPanels = rows / mr
        var p0 = 0
        while p0 < depth {
            let p1 = min(depth, p0 + 16)
            for panel in 0..<fullPanels {
                let destination = panels + panel * mr * depth
                for p in p0..<p1 {
                    copyStep(from: a + p * lda + panel * mr, to: destination + p * mr)
                }
            }
            p0 = p1
        }
        if fullPanels * mr < rows {
            packEdgePanel(transposed: true, a + fullPanels * mr, lda: lda, rows: rows - fullPanels * mr, depth: depth,
                          into: panels + fullPanels * mr * depth)
        }
    }

    /// Copies the mr floats of one step of a panel; mr is a compile-time constant, so this
    /// folds to one or two vector moves.
    @inline(__always)
    private static func copyStep(from source: UnsafePointer<Float>, to destination: UnsafeMutablePointer<Float>) {
        let mr = GEMMBlocking.mr
        let from = UnsafeRawPointer(source), to = UnsafeMutableRawPointer(destination)
        var r = 0
        while r + 8 <= mr {
            to.storeBytes(of: from.loadUnaligned(fromByteOffset: 4 * r, as: SIMD8<Float>.self), toByteOffset: 4 * r, as: SIMD8<Float>.self)
            r += 8
        }
        while r + 2 <= mr {
            to.storeBytes(of: from.loadUnaligned(fromByteOffset: 4 * r, as: SIMD2<Float>.self), toByteOffset: 4 * r, as: SIMD2<Float>.self)
            r += 2
        }
        if r < mr { destination[r] = source[r] }
    }

    /// Packs rows `0..<depth` × columns `0..<columns` of op(B) (B starts at the block's origin)
    /// into `nr`-column panels: panel `j` holds, for each p, the `nr` values op(B)[p, j·nr + c].
    @inline(__always)
    static func packB(
        transposed: Bool, _ b: UnsafePointer<Float>, ldb: Int,
        depth: Int, columns: Int, into destination: UnsafeMutablePointer<Float>
    ) {
        let nr = GEMMBlocking.nr
        var panel = destination
        var j = 0
        while j < columns {
            let width = min(nr, columns - j)
            if transposed && nr % 16 == 0 {
                // B is stored n×k: transpose 16-column × 16-step blocks in registers.
                for group in 0..<nr / 16 {
                    let first = 16 * group
                    var p = 0
                    while p + 16 <= depth {
                        transpose16x16(row: { c in
                            first + c < width
                                ? UnsafeRawPointer(b + (j + first + c) * ldb + p).loadUnaligned(as: SIMD16<Float>.self)
                                : SIMD16()
                        }, store: { s, row in
                            UnsafeMutableRawPointer(panel + (p + s) * nr + first).storeBytes(of: row, as: SIMD16<Float>.self)
                        })
                        p += 16
                    }
                    for q in p..<depth {
                        for c in first..<first + 16 { panel[q * nr + c] = c < width ? b[(j + c) * ldb + q] : 0 }
                    }
                }
            } else if transposed {
                // A tile width that is no multiple of 16 (NEON's 12): column by column.
                for c in 0..<nr {
                    let column = b + (j + c) * ldb
                    for p in 0..<depth { panel[p * nr + c] = c < width ? column[p] : 0 }
                }
            } else {
                // B is stored k×n: the nr values for one p are contiguous.
                typealias V = FloatVector
                let lanes = V.scalarCount
                var source = b + j
                if width == nr {
                    for p in 0..<depth {
                        for w in 0..<nr / lanes {
                            let value = UnsafeRawPointer(source + w * lanes).loadUnaligned(as: V.self)
                            UnsafeMutableRawPointer(panel + p * nr + w * lanes).storeBytes(of: value, as: V.self)
                        }
                        source += ldb
                    }
                } else {
                    for p in 0..<depth {
                        for c in 0..<nr { panel[p * nr + c] = c < width ? source[c] : 0 }
                        source += ldb
                    }
                }
            }
            panel += nr * depth
            j += nr
        }
    }

    /// Transposes the 16×16 block whose row `r` is `row(r)`, handing column `s` to
    /// `store(s, column)`. Four rounds of a perfect unshuffle (the even lanes of each pair of
    /// vectors, then the odd lanes) rotate the 8-bit element index (row, column) by four bits,
    /// which swaps row and column: 64 two-source permutes for 256 elements, all in registers.
    @inline(__always)
    static func transpose16x16(row: (Int) -> SIMD16<Float>, store: (Int, SIMD16<Float>) -> Void) {
        typealias V = SIMD16<Float>
        @inline(__always)
        func unshuffle(_ v: (V, V, V, V, V, V, V, V, V, V, V, V, V, V, V, V)) -> (V, V, V, V, V, V, V, V, V, V, V, V, V, V, V, V) {
            (V(lowHalf: v.0.evenHalf, highHalf: v.1.evenHalf),
             V(lowHalf: v.2.evenHalf, highHalf: v.3.evenHalf),
             V(lowHalf: v.4.evenHalf, highHalf: v.5.evenHalf),
             V(lowHalf: v.6.evenHalf, highHalf: v.7.evenHalf),
             V(lowHalf: v.8.evenHalf, highHalf: v.9.evenHalf),
             V(lowHalf: v.10.evenHalf, highHalf: v.11.evenHalf),
             V(lowHalf: v.12.evenHalf, highHalf: v.13.evenHalf),
             V(lowHalf: v.14.evenHalf, highHalf: v.15.evenHalf),
             V(lowHalf: v.0.oddHalf, highHalf: v.1.oddHalf),
             V(lowHalf: v.2.oddHalf, highHalf: v.3.oddHalf),
             V(lowHalf: v.4.oddHalf, highHalf: v.5.oddHalf),
             V(lowHalf: v.6.oddHalf, highHalf: v.7.oddHalf),
             V(lowHalf: v.8.oddHalf, highHalf: v.9.oddHalf),
             V(lowHalf: v.10.oddHalf, highHalf: v.11.oddHalf),
             V(lowHalf: v.12.oddHalf, highHalf: v.13.oddHalf),
             V(lowHalf: v.14.oddHalf, highHalf: v.15.oddHalf))
        }
        let rows = (row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7), row(8), row(9), row(10), row(11), row(12), row(13), row(14), row(15))
        let v = unshuffle(unshuffle(unshuffle(unshuffle(rows))))
        store(0, v.0); store(1, v.1); store(2, v.2); store(3, v.3); store(4, v.4); store(5, v.5); store(6, v.6); store(7, v.7); store(8, v.8); store(9, v.9); store(10, v.10); store(11, v.11); store(12, v.12); store(13, v.13); store(14, v.14); store(15, v.15)
    }
}
