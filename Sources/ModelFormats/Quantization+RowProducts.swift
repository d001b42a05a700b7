import FlashCore

extension QuantizedMatrix {
    /// `y[t] = W·x[t]` for `tokens` rows of `x` and several matrices that read the same x (e.g.
    /// the query, key and value projections), each element computed exactly as
    /// `multiplyVector` computes it, so a row's result never depends on which other rows share
    /// the call: the batch-invariant product a serving engine needs (a sequence's output must not
    /// change with the batch it runs in). One token goes through `multiplyVectors` (one parallel
    /// region, x quantised once); several through `multiply`, whose tiles read each weight once
    /// for the whole batch.
    public static func multiplyRows(
        _ products: [(matrix: QuantizedMatrix, y: UnsafeMutablePointer<Float>, yStride: Int)],
        x: UnsafePointer<Float>, xStride: Int, tokens: Int, threads: Int? = nil
    ) {
        guard tokens > 0, !products.isEmpty else { return }
        if tokens == 1 {
            multiplyVectors(products.map { ($0.matrix, x, $0.y) }, threads: threads)
            return
        }
        for p in products {
            p.matrix.multiply(x, tokens: tokens, xStride: xStride, into: p.y, yStride: p.yStride, threads: threads)
        }
    }
}
