import Transformer

/// How decoding sequences guess tokens for the target model to verify.
public enum SpeculationMethod: String, Sendable, CaseIterable {
    case none
    /// Prompt lookup: the tokens that followed the latest earlier occurrence of the sequence's
    /// last 3 (else 2) tokens. Free, and good when the output copies from the prompt.
    case ngram
    /// A smaller model with the same vocabulary proposes its greedy continuation.
    case draft
}

/// Speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a decoding sequence's step
/// computes its new token and k guesses in one pass of the target, so each step may emit up to
/// k + 1 tokens for one pass over the weights.
///
/// Acceptance: both proposers are deterministic (the draft proposes its argmax), so the draft
/// distribution q is one-hot on the guess g. The standard rule — accept g with probability
/// min(1, p(g)/q(g)) = p(g), on rejection draw from (p − q)₊ normalised = p restricted to
/// tokens ≠ g — is then exactly "draw x from p with the sequence's sampler and keep g iff
/// x = g, else emit x". The scheduler does that: every emitted token is one draw from the target
/// distribution at its position, in order, with the same generator as without speculation, so
/// the output (greedy or seeded) is identical to decoding without it, token for token.
extension Scheduler {
    /// Guesses per decoding sequence, capped so that accepted tokens never pass `maxTokens` or
    /// the context.
    func proposals(for decodes: [SequenceState]) throws -> [ObjectIdentifier: [Int]] {
        let k = configuration.speculativeTokens
        guard k > 0, configuration.speculation != .none, !decodes.isEmpty else { return [:] }
        let lists: [[Int]]
        switch configuration.speculation {
        case .none: return [:]
        case .ngram: lists = decodes.map { Self.promptLookup($0.tokens, count: k) }
        case .draft: lists = try draftProposals(decodes, count: k)
        }
        var result: [ObjectIdentifier: [Int]] = [:]
        for (s, list) in zip(decodes, lists) {
            let limit = min(s.request.request.maxTokens - s.generated - 1, model.contextLength - s.tokens.count)
            result[ObjectIdentifier(s)] = Array(list.prefix(max(0, limit)))
        }
        return result
    }

    /// Prompt-lookup (n-gram) guesses: up to `count` tokens that followed the latest earlier
    /// occurrence of the last `n` tokens, for n = maxN down to minN. (A single repeated token
    /// matches too often to be worth a guess: each rejected guess costs a row of the pass.)
    static func promptLookup(_ tokens: [Int], count: Int, maxN: Int = 3, minN: Int = 2) -> [Int] {
        guard count > 0, tokens.count > minN else { return [] }
        for n in stride(from: min(maxN, tokens.count - 1), through: minN, by: -1) {
            let suffix = tokens[(tokens.count - n)...]
            var start = tokens.count - n - 1
            while start >= 0 {
                if tokens[start..<(start + n)].elementsEqual(suffix) {
                    return Array(tokens[(start + n)..<min(tokens.count, start + n + count)])
                }
                start -= 1
            }
        }
        return []
    }

    /// The draft model's greedy continuations, `count` rounds batched over the sequences: the
    /// first round catches the draft's cache up with each sequence (its own paged cache and
    /// blocks), each later round feeds the previous guess.
    func draftProposals(_ sequences: [SequenceState], count: Int) throws -> [[Int]] {
        guard let draft, let draftCache, let draftBlocks else { return sequences.map { _ in [] } }
        let v = draft.vocabularySize
        var proposals = sequences.map { _ in [Int]() }
        var feed: [[Int]] = []
        for s in sequences {
            if !draftBlocks.contains(s.id) {
                try draftBlocks.startSequence(s.id, prompt: [])
                s.draftComputed = 0
            }
            feed.append(Array(s.tokens[s.draftComputed...]))
        }
        var active = Array(sequences.indices)
        for _ in 0..<count {
            var members: [Int] = []
            var batch: [PagedBatch.Sequence] = []
            for i in active {
                let s = sequences[i]
                // The last guess must leave room in the context for the target's verification.
                guard s.draftComputed + feed[i].count < model.contextLength,
                      try draftBlocks.appendSlots(s.id, count: feed[i].count) != nil else { continue }
                batch.append(PagedBatch.Sequence(tokens: feed[i], start: s.draftComputed,
                                                 blockTable: draftBlocks.blockTable(s.id).map(Int32.init), logitRows: 1))
                members.append(i)
            }
            guard !batch.isEmpty else { break }
            let logits = try draft.forward(PagedBatch(sequences: batch), cache: draftCache)
            for (j, i) in members.enumerated() {
                let s = sequences[i]
                try draftBlocks.commit(s.id, tokens: feed[i])
                s.draftComputed += feed[i].count
                var best = j * v
                for t in (j * v)..<((j + 1) * v) where logits[t] > logits[best] { best = t }
                proposals[i].append(best - j * v)
                feed[i] = [best - j * v]
            }
            active = members
        }
        return proposals
    }
}
