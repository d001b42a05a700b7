import FlashCore

/// A tokenised corpus split into training and validation parts (the last
/// `validationFraction` of the tokens), sampled as random windows of `context + 1` tokens.
public struct TokenDataset: Sendable {
    public enum Split: Sendable { case training, validation }

    public let training: [Int32]
    public let validation: [Int32]

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
