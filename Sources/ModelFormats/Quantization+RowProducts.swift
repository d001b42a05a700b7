import FlashCore

extension QuantizedMatrix {
    /// `y[t] = W·x[t]` for `tokens` rows of `x` and several matrices that read the same x (e.g.
    /// the query, key and value projections), each element computed exactly as
    /// `multiplyVector` computes it, so a row's result never depends on which other rows share
    /// the call: the batch-invariant product a serving engine needs (a sequence's output must not
    /// change with the batch it runs in). One parallel region for all the products; x is
    /// quantised once, and each weight row is read once for the whole batch (the kernel's
    /// register tiles reuse each unpacked weight block for several rows of x).
    public static func multiplyRows(
        _ products: [(matrix: QuantizedMatrix, y: UnsafeMutablePointer<Float>, yStride: Int)],
        x: UnsafePointer<Float>, xStride: Int, tokens: Int, threads: Int? = nil
    ) {
        multiplyTokens(products.map { ($0.matrix, x, xStride, $0.y, $0.yStride) }, tokens: tokens, threads: threads)
    }
}
