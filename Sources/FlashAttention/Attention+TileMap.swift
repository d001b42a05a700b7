import FlashCore

/// What the flash forward kernel does with one query-tile × key-tile block of the score matrix.
public enum TileCoverage: String, Sendable, Codable {
    /// Every logit is masked: the kernel never loads the key/value tile nor multiplies it.
    case skipped
    /// Some logits are masked: the tile is computed and the mask applied element by element.
    case partial
    /// No logit is masked: the tile is computed without any per-element mask work.
    case full
}

extension Attention {
    /// The flash forward kernel's tile grid for sequence `sequence` of a call: entry `[qt][kt]`
    /// says what the kernel does with query tile `qt` (rows qt·Br ..< (qt+1)·Br) against key
    /// tile `kt` (keys kt·Bc ..< (kt+1)·Bc), with Br × Bc from ``AttentionTiles``.
    ///
    /// The answer comes from the same band and padding tests the kernels run before each tile
    /// (causal mask, sliding window, `keyLengths`), so it shows exactly which tiles a mask lets
    /// the kernel skip. Elementwise terms (bias, ALiBi, softcap, keep-mask) do not change it.
    /// The operands are validated as for ``forward(query:key:value:descriptor:output:)`` but
    /// not read.
    public static func tileMap(
        query: Tensor, key: Tensor, value: Tensor,
        descriptor: AttentionDescriptor = AttentionDescriptor(), sequence: Int = 0
    ) throws -> [[TileCoverage]] {
        let problem = try descriptor.problem(query: query, key: key, value: value)
        try InvalidArgument.require((0..<problem.sequenceCount).contains(sequence), "sequence",
                                    expected: "0..<\(problem.sequenceCount)", got: "\(sequence)")
        let tiles = problem.tiles
        let nq = problem.queryLengths[sequence], nk = problem.keyLengths[sequence]
        return stride(from: 0, to: nq, by: tiles.queryRows).map { i0 in
            let i1 = min(nq, i0 + tiles.queryRows)
            return stride(from: 0, to: nk, by: tiles.keyColumns).map { j0 in
                let j1 = min(nk, j0 + tiles.keyColumns)
                if !problem.tileVisible(sequence: sequence, queries: i0, i1, keys: j0, j1) { return .skipped }
                return problem.tileFullyVisible(sequence: sequence, queries: i0, i1, keys: j0, j1) ? .full : .partial
            }
        }
    }
}
