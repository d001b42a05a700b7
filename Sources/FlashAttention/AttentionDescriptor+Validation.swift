import FlashCore

extension AttentionDescriptor {
    /// Checks a batched call ([B, N, H, D] tensors) and resolves it into an `AttentionProblem`.
    func problem(query: Tensor, key: Tensor, value: Tensor) throws -> AttentionProblem {
        for (name, t) in [("query", query), ("key", key), ("value", value)] {
            try InvalidArgument.require(t.rank == 4, "\(name).rank", expected: "4 ([batch, seqLen, heads, headDim])",
                                        got: "\(t.rank) (shape \(t.shape))")
        }
        let (batch, queryLength, queryHeads, headDim) = (query.shape[0], query.shape[1], query.shape[2], query.shape[3])
        try Self.checkHeads(query: query.shape[2], key: key.shape[2], headDim: headDim, axisOfHeads: 2)
        try InvalidArgument.require(key.shape[0] == batch, "key.shape[0]", expected: "\(batch) (query's batch)", got: "\(key.shape[0])")
        try InvalidArgument.require(value.shape[0] == batch, "value.shape[0]", expected: "\(batch) (query's batch)", got: "\(value.shape[0])")
        try InvalidArgument.require(key.shape[3] == headDim, "key.shape[3]", expected: "\(headDim) (query's head dimension)", got: "\(key.shape[3])")
        try InvalidArgument.require(value.shape == key.shape, "value.shape", expected: "\(key.shape) (key's shape)", got: "\(value.shape)")
        let keyLength = key.shape[1]
        try checkCommonOptions(queryHeads: queryHeads)
        for (name, tensor) in [("descriptor.bias", bias), ("descriptor.keepMask", keepMask)] {
            guard let tensor else { continue }
            try Self.checkBroadcast(tensor, name: name, full: [batch, queryHeads, queryLength, keyLength])
        }
        var valid = [Int](repeating: keyLength, count: batch)
        if let keyLengths {
            try InvalidArgument.require(keyLengths.count == batch, "descriptor.keyLengths.count",
                                        expected: "\(batch) (one per batch entry)", got: "\(keyLengths.count)")
            for (b, length) in keyLengths.enumerated() {
                try InvalidArgument.require(length >= 0 && length <= keyLength, "descriptor.keyLengths[\(b)]",
                                            expected: "in 0...\(keyLength) (key sequence length)", got: "\(length)")
            }
            valid = keyLengths
        }
        return makeProblem(
            sequences: batch, queryLengths: [Int](repeating: queryLength, count: batch),
            keyLengths: [Int](repeating: keyLength, count: batch),
            queryStarts: [Int](repeating: 0, count: batch), keyStarts: [Int](repeating: 0, count: batch),
            validKeys: valid, queryHeads: queryHeads, keyHeads: key.shape[2], headDim: headDim,
            query: .batched(query), key: .batched(key), value: .batched(value))
    }

    /// Checks a packed variable-length call ([totalTokens, H, D] tensors with cumulative
    /// sequence offsets) and resolves it into an `AttentionProblem`.
    func variableLengthProblem(
        query: Tensor, key: Tensor, value: Tensor, cumulativeQueryLengths: [Int], cumulativeKeyLengths: [Int]
    ) throws -> AttentionProblem {
        for (name, t) in [("query", query), ("key", key), ("value", value)] {
            try InvalidArgument.require(t.rank == 3, "\(name).rank", expected: "3 ([totalTokens, heads, headDim])",
                                        got: "\(t.rank) (shape \(t.shape))")
        }
        let (queryHeads, headDim) = (query.shape[1], query.shape[2])
        try Self.checkHeads(query: queryHeads, key: key.shape[1], headDim: headDim, axisOfHeads: 1)
        try InvalidArgument.require(key.shape[2] == headDim, "key.shape[2]", expected: "\(headDim) (query's head dimension)", got: "\(key.shape[2])")
        try InvalidArgument.require(value.shape == key.shape, "value.shape", expected: "\(key.shape) (key's shape)", got: "\(value.shape)")
        try InvalidArgument.require(cumulativeQueryLengths.count >= 1, "cumulativeQueryLengths.count",
                                    expected: "≥ 1 (sequences + 1)", got: "0")
        try InvalidArgument.require(cumulativeKeyLengths.count == cumulativeQueryLengths.count, "cumulativeKeyLengths.count",
                                    expected: "\(cumulativeQueryLengths.count) (as cumulativeQueryLengths)", got: "\(cumulativeKeyLengths.count)")
        for (name, offsets, total) in [("cumulativeQueryLengths", cumulativeQueryLengths, query.shape[0]),
                                       ("cumulativeKeyLengths", cumulativeKeyLengths, key.shape[0])] {
            try InvalidArgument.require(offsets[0] == 0, "\(name)[0]", expected: "0", got: "\(offsets[0])")
            for s in 1..<offsets.count {
                try InvalidArgument.require(offsets[s] >= offsets[s - 1], "\(name)[\(s)]",
                                            expected: "≥ \(offsets[s - 1]) (non-decreasing)", got: "\(offsets[s])")
            }
            try InvalidArgument.require(offsets.last! == total, "\(name).last",
                                        expected: "\(total) (the packed token count)", got: "\(offsets.last!)")
        }
        try checkCommonOptions(queryHeads: queryHeads)
        try InvalidArgument.require(bias == nil, "descriptor.bias", expected: "nil for variable-length batches", got: "a tensor")
        try InvalidArgument.require(keepMask == nil, "descriptor.keepMask", expected: "nil for variable-length batches", got: "a tensor")
        try InvalidArgument.require(keyLengths == nil, "descriptor.keyLengths",
                                    expected: "nil for variable-length batches (lengths come from cumulativeKeyLengths)", got: "\(keyLengths!)")
        let sequences = cumulativeQueryLengths.count - 1
        let queryLengths = (0..<sequences).map { cumulativeQueryLengths[$0 + 1] - cumulativeQueryLengths[$0] }
        let keyLengths = (0..<sequences).map { cumulativeKeyLengths[$0 + 1] - cumulativeKeyLengths[$0] }
        return makeProblem(
            sequences: sequences, queryLengths: queryLengths, keyLengths: keyLengths,
            queryStarts: Array(cumulativeQueryLengths.dropLast()), keyStarts: Array(cumulativeKeyLengths.dropLast()),
            validKeys: keyLengths, queryHeads: queryHeads, keyHeads: key.shape[1], headDim: headDim,
            query: .packed(query), key: .packed(key), value: .packed(value))
    }

    /// Checks a Float32 tensor the kernels write (or read back) against its expected shape.
    static func checkShape(_ tensor: Tensor, _ name: String, expected shape: [Int], float32: Bool) throws {
        try InvalidArgument.require(tensor.shape == shape, "\(name).shape", expected: "\(shape)", got: "\(tensor.shape)")
        if float32 {
            try InvalidArgument.require(tensor.elementType == .float32, "\(name).elementType", expected: "F32",
                                        got: tensor.elementType.rawValue)
        }
    }

    private static func checkHeads(query: Int, key: Int, headDim: Int, axisOfHeads axis: Int) throws {
        try InvalidArgument.require(query >= 1, "query.shape[\(axis)]", expected: "≥ 1 head", got: "\(query)")
        try InvalidArgument.require(key >= 1, "key.shape[\(axis)]", expected: "≥ 1 head", got: "\(key)")
        try InvalidArgument.require(headDim >= 1, "query.shape[\(axis + 1)]", expected: "a head dimension ≥ 1", got: "\(headDim)")
        try InvalidArgument.require(query % key == 0, "query.shape[\(axis)]",
                                    expected: "a multiple of the key/value heads (\(key))", got: "\(query)")
    }

    private func checkCommonOptions(queryHeads: Int) throws {
        if let scale {
            try InvalidArgument.require(scale.isFinite, "descriptor.scale", expected: "a finite number", got: "\(scale)")
        }
        if let windowLeft {
            try InvalidArgument.require(windowLeft >= 0, "descriptor.windowLeft", expected: "≥ 0 (or nil)", got: "\(windowLeft)")
        }
        if let windowRight {
            try InvalidArgument.require(windowRight >= 0, "descriptor.windowRight", expected: "≥ 0 (or nil)", got: "\(windowRight)")
        }
        if let softcap {
            try InvalidArgument.require(softcap > 0 && softcap.isFinite, "descriptor.softcap",
                                        expected: "a finite value > 0 (or nil)", got: "\(softcap)")
        }
        if let alibiSlopes {
            try InvalidArgument.require(alibiSlopes.count == queryHeads, "descriptor.alibiSlopes.count",
                                        expected: "\(queryHeads) (one per query head)", got: "\(alibiSlopes.count)")
            for (h, slope) in alibiSlopes.enumerated() {
                try InvalidArgument.require(slope.isFinite, "descriptor.alibiSlopes[\(h)]", expected: "a finite number", got: "\(slope)")
            }
        }
        try InvalidArgument.require(dropoutProbability >= 0 && dropoutProbability < 1, "descriptor.dropoutProbability",
                                    expected: "in [0, 1)", got: "\(dropoutProbability)")
        try InvalidArgument.require(dropoutSequenceOffset >= 0, "descriptor.dropoutSequenceOffset", expected: "≥ 0",
                                    got: "\(dropoutSequenceOffset)")
        if let threads {
            try InvalidArgument.require(threads >= 1, "descriptor.threads", expected: "≥ 1 (or nil)", got: "\(threads)")
        }
    }

    private static func checkBroadcast(_ tensor: Tensor, name: String, full: [Int]) throws {
        try InvalidArgument.require(tensor.rank <= 4, "\(name).rank", expected: "≤ 4 (broadcast over [batch, heads, Nq, Nk])",
                                    got: "\(tensor.rank)")
        let shape = [Int](repeating: 1, count: 4 - tensor.rank) + tensor.shape
        let axes = ["batch", "heads", "Nq", "Nk"]
        for axis in 0..<4 {
            try InvalidArgument.require(shape[axis] == 1 || shape[axis] == full[axis], "\(name).shape",
                                        expected: "broadcastable to \(full) (\(axes[axis]) must be 1 or \(full[axis]))",
                                        got: "\(tensor.shape)")
        }
    }

    private func makeProblem(
        sequences: Int, queryLengths: [Int], keyLengths: [Int], queryStarts: [Int], keyStarts: [Int],
        validKeys: [Int], queryHeads: Int, keyHeads: Int, headDim: Int,
        query: HeadRows, key: HeadRows, value: HeadRows
    ) -> AttentionProblem {
        let unbounded = AttentionProblem.unbounded
        var right = windowRight ?? unbounded
        if causal { right = min(right, 0) }
        return AttentionProblem(
            sequenceCount: sequences, queryLengths: queryLengths, keyLengths: keyLengths,
            queryStarts: queryStarts, keyStarts: keyStarts, validKeys: validKeys,
            queryHeads: queryHeads, keyHeads: keyHeads, headDim: headDim,
            query: query, key: key, value: value,
            scale: scale ?? 1 / Float(headDim).squareRoot(),
            leftReach: windowLeft ?? unbounded, rightReach: right,
            softcap: softcap, alibiSlopes: alibiSlopes,
            bias: bias.map(BroadcastLogits.init), keepMask: keepMask.map(BroadcastLogits.init),
            dropoutProbability: dropoutProbability, dropoutSeed: dropoutSeed, dropoutSequenceOffset: dropoutSequenceOffset,
            threads: threads ?? Parallel.defaultThreads)
    }
}
