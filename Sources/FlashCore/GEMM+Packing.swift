/// Packing: copies a block of op(A) or op(B) into the panel layout the micro-kernel reads
/// with unit stride, zero-padding the last panel so ragged edges need no special kernel.
extension GEMM {
    /// Packs rows `0..<rows` × columns `0..<depth` of op(A) (A starts at the block's origin)
    /// into `mr`-row panels: panel `i` holds, for each p, the `mr` values op(A)[i·mr + r, p].
    @inline(__always)
    static func packA(
        transposed: Bool, _ a: UnsafePointer<Float>, lda: Int,
        rows: Int, depth: Int, into destination: UnsafeMutablePointer<Float>
    ) {
        let mr = GEMMBlocking.mr
        var panel = destination
        var i = 0
        while i < rows {
            let height = min(mr, rows - i)
            if transposed {
                // A is stored k×m: the mr values for one p are contiguous.
                var source = a + i
                if height == mr {
                    for p in 0..<depth {
                        UnsafeMutableRawPointer(panel + p * mr).storeBytes(
                            of: UnsafeRawPointer(source).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                        source += lda
                    }
                } else {
                    for p in 0..<depth {
                        for r in 0..<mr { panel[p * mr + r] = r < height ? source[r] : 0 }
                        source += lda
                    }
                }
            } else {
                // A is stored m×k: read each row contiguously, write it with stride mr.
                for r in 0..<mr {
                    if r < height {
                        let source = a + (i + r) * lda
                        for p in 0..<depth { panel[p * mr + r] = source[p] }
                    } else {
                        for p in 0..<depth { panel[p * mr + r] = 0 }
                    }
                }
            }
            panel += mr * depth
            i += mr
        }
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
            if transposed {
                // B is stored n×k: read each stored row contiguously, write it with stride nr.
                for c in 0..<nr {
                    if c < width {
                        let source = b + (j + c) * ldb
                        for p in 0..<depth { panel[p * nr + c] = source[p] }
                    } else {
                        for p in 0..<depth { panel[p * nr + c] = 0 }
                    }
                }
            } else {
                // B is stored k×n: the nr values for one p are contiguous.
                var source = b + j
                if width == nr {
                    for p in 0..<depth {
                        let low = UnsafeRawPointer(source).loadUnaligned(as: SIMD16<Float>.self)
                        let high = UnsafeRawPointer(source + 16).loadUnaligned(as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(panel + p * nr).storeBytes(of: low, as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(panel + p * nr + 16).storeBytes(of: high, as: SIMD16<Float>.self)
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
}
