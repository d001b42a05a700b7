import FlashCore

/// A tokenised corpus split into training and validation parts (the last
/// `validationFraction` of the tokens), sampled as random windows of `context + 1` tokens.
public struct TokenDataset: Sendable {
    /// Which part to sample from.
    public enum Split: Sendable { case training, validation }

    /// The tokens batches are drawn from.
    public let training: [Int32]
    /// The held-out tokens validation losses are computed on.
    public let validation: [Int32]

    /// Splits `tokens`, keeping the last `validationFraction` for validation; throws
    /// `InvalidArgument` when the training part is shorter than one window of `context + 1`.
    public init(tokens: [Int], validationFraction: Double, context: Int) throws {
        try InvalidArgument.require(validationFraction >= 0 && validationFraction < 1, "validationFraction", expected: "in [0, 1)", got: "\(validationFraction)")
        let validationCount = Int(Double(tokens.count) * validationFraction)
        let trainingCount = tokens.count - validationCount
        try InvalidArgument.require(trainingCount > context, "data", expected: "more than context + validation (\(context) + \(validationCount)) tokens",
                                    got: "\(tokens.count) tokens")
        training = tokens[..<trainingCount].map { Int32($0) }
        validation = tokens[trainingCount...].map { Int32($0) }
    }

    /// Whether the validation part can give a window (it needs `context + 1` tokens).
    public func hasValidation(context: Int) -> Bool { validation.count > context }

    /// `batch` random windows: inputs [batch, context] and targets (inputs shifted by one).
    public func sample(_ split: Split, batch: Int, context: Int, random: inout TrainerRandom) -> (inputs: [Int32], targets: [Int32]) {
        let tokens = split == .training ? training : validation
        var inputs = [Int32](), targets = [Int32]()
        inputs.reserveCapacity(batch * context)
        targets.reserveCapacity(batch * context)
        for _ in 0..<batch {
            let start = random.nextInt(below: tokens.count - context)
            inputs += tokens[start..<(start + context)]
            targets += tokens[(start + 1)...(start + context)]
        }
        return (inputs, targets)
    }
}
