import Foundation
import XCTest
import ModelFormats
@testable import Serving
import Transformer

/// The serving invariant: greedy output is token for token what a lone `flash generate
/// --temperature 0` produces, whatever else the engine runs — concurrent requests of
/// different lengths, prefix-cache hits, chunked prefill, preemption by a tiny pool.
final class EngineTests: XCTestCase {
    static let system = "You are a careful assistant. Answer in one short sentence, and never invent facts you do not know. "

    func prompts(_ tokenizer: GGUFTokenizer) -> [[Int]] {
        let questions = ["What is the capital of France?", "Name a prime number.", "Why is the sky blue?",
                         "Write a haiku about autumn leaves falling on a quiet pond.", "2 + 2 =", "Tell me about whales.",
                         "List three colours.", "The quick brown fox"]
        // Half share a long system prompt (prefix-cache hits), half stand alone; lengths differ.
        return questions.enumerated().map { i, q in tokenizer.encode(i % 2 == 0 ? Self.system + q : q) }
    }

    func testPagedForwardMatchesTheContiguousModel() throws {
        let (model, tokenizer) = try ServingFixtures.llama()
        let v = model.configuration.vocabularySize
        let a = tokenizer.encode("The capital of France is"), b = tokenizer.encode(Self.system)
        let cache = try model.makePagedCache(blockCount: 16, blockSize: 16)
        // Two sequences in one pass, b's blocks not in order.
        let logits = try model.forward(PagedBatch(sequences: [
            .init(tokens: a, start: 0, blockTable: [3], logitRows: a.count),
            .init(tokens: b, start: 0, blockTable: [9, 0, 7, 5], logitRows: 1),
        ]), cache: cache)
        XCTAssertEqual(logits.count, (a.count + 1) * v)
        for (prompt, rows, offset) in [(a, a.count, 0), (b, 1, a.count)] {
            let expected = try model.forward(prompt, cache: model.makeCache(capacity: prompt.count), allLogits: true)
            for r in 0..<rows {
                let mine = logits[((offset + r) * v)..<((offset + r + 1) * v)]
                let theirs = expected[((prompt.count - rows + r) * v)..<((prompt.count - rows + r + 1) * v)]
                // The contiguous model attends with the flash prefill kernel, the paged one row by
                // row: the two sum in different orders (~1e-7 relative), and the 8-bit activation
                // quantisation can turn such a difference into one quantisation step of an
                // activation (1/127 of its block's largest value), which moves logits by up to ~1
                // (observed 1.03; the 8-bit model is up to 1.0 from llama.cpp's own logits,
                // LlamaModelTests). Greedy equality between the engine and `flash generate` holds
                // exactly because both run this paged path.
                let worst = zip(mine, theirs).map { abs($0 - $1) }.max()!
                XCTAssertLessThan(worst, 1.5, "row \(r) of a \(prompt.count)-token prompt")
                XCTAssertEqual(ServingFixtures.argmax(mine), ServingFixtures.argmax(theirs))
            }
        }
    }

    /// A tied head multiplies by Eᵀ in place; a lone logit row must still get the arithmetic of
    /// a row in a batch (dot products over E's rows would sum in another order).
    func testTiedHeadLogitsOfALoneRowEqualThoseOfTheSameRowInABatch() throws {
        let config = TransformerConfig(layers: 2, heads: 4, kvHeads: 2, width: 64, mlpWidth: 160, context: 96, vocabularySize: 300,
                                       positionEncoding: .rotary, norm: .rmsNorm, activation: .swiglu, bias: false, tiedEmbeddings: true)
        let model = try ServingFixtures.checkpointModel(config)
        let v = config.vocabularySize
        let a = (0..<9).map { ($0 * 37 + 1) % v }, b = (0..<14).map { ($0 * 53 + 2) % v }
        let alone = try model.forward(PagedBatch(sequences: [.init(tokens: a, start: 0, blockTable: [0], logitRows: 1)]),
                                      cache: model.makePagedCache(blockCount: 2, blockSize: 16))
        let together = try model.forward(PagedBatch(sequences: [
            .init(tokens: b, start: 0, blockTable: [0], logitRows: 2),
            .init(tokens: a, start: 0, blockTable: [1], logitRows: 1),
        ]), cache: model.makePagedCache(blockCount: 2, blockSize: 16))
        let batched = Array(together[(2 * v)...])
        XCTAssert(alone == batched, "logit \(zip(alone, batched).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1) differs")
        // And both are the model's own logits (its whole-sequence forward, tied head by the same GEMM).
        try model.forward(tokens: a.map(Int32.init), batch: 1, time: a.count)
        XCTAssertLessThan(zip(alone, model.logits(row: a.count - 1)).map { abs($0 - $1) }.max()!, 1e-3)
    }

    func testGreedyIsIdenticalAloneAndAmongEightConcurrentRequestsWithPrefixHitsAndChunkedPrefill() async throws {
        let (model, tokenizer) = try ServingFixtures.llama()
        let prompts = prompts(tokenizer)
        let maxTokens = 10
        let expected = try prompts.map { try ServingFixtures.referenceGreedy(model, prompt: $0, maxTokens: maxTokens) }
        // A 24-token step budget splits every system-prompt request into chunks.
        let engine = try ServingEngine(model: model, configuration: ServingConfiguration(
            blockSize: 16, blockCount: 128, maxRunning: 8, maxBatchTokens: 24, threads: 2))
        let greedy = SamplingParameters(temperature: 0)
        // A lone request first (it leaves the system prompt's blocks in the prefix cache).
        let alone = try await ServingFixtures.run(engine, [GenerationRequest(promptTokens: prompts[0], maxTokens: maxTokens, sampling: greedy)])
        XCTAssertEqual(alone[0].tokens[0], expected[0])
        let results = try await ServingFixtures.run(engine, prompts.map {
            GenerationRequest(promptTokens: $0, maxTokens: maxTokens, sampling: greedy)
        })
        for (i, r) in results.enumerated() {
            XCTAssertEqual(r.tokens[0], expected[i], "prompt \(i)")
            XCTAssertEqual(r.finishes.map(\.0), [.length])
            XCTAssertEqual(r.finishes[0].1.promptTokens, prompts[i].count)
            XCTAssertEqual(r.finishes[0].1.completionTokens, maxTokens)
        }
        // The system prompt's full blocks were reused by the later requests that share it.
        let systemBlocks = tokenizer.encode(Self.system).count / 16
        XCTAssertGreaterThan(systemBlocks, 0)
        for i in stride(from: 0, to: 8, by: 2) {
            XCTAssertGreaterThanOrEqual(results[i].finishes[0].1.cachedPromptTokens, systemBlocks * 16, "prompt \(i)")
        }
        let stats = engine.statistics
        XCTAssertGreaterThan(stats.prefixHitTokens, 0)
        XCTAssertEqual(stats.blocksUsed, 0)
        XCTAssertEqual(stats.runningRequests + stats.waitingRequests, 0)
        engine.shutdown()
    }

    func testGreedyIsIdenticalAfterPreemptionByATinyPool() async throws {
        let (model, tokenizer) = try ServingFixtures.llama()
        let prompts = Array(prompts(tokenizer).prefix(4))
        let maxTokens = 24
        let expected = try prompts.map { try ServingFixtures.referenceGreedy(model, prompt: $0, maxTokens: maxTokens) }
        // 10 blocks of 8 positions: each request needs 4–7 blocks at its end, so they cannot all fit.
        let engine = try ServingEngine(model: model, configuration: ServingConfiguration(
            blockSize: 8, blockCount: 10, maxRunning: 4, maxBatchTokens: 64, threads: 2))
        let results = try await ServingFixtures.run(engine, prompts.map {
            GenerationRequest(promptTokens: $0, maxTokens: maxTokens, sampling: SamplingParameters(temperature: 0))
        })
        for (i, r) in results.enumerated() { XCTAssertEqual(r.tokens[0], expected[i], "prompt \(i)") }
        XCTAssertGreaterThan(engine.statistics.preemptions, 0)
        engine.shutdown()
    }

    func testTrainedModelThroughTheSameEngine() async throws {
        let model = try ServingFixtures.checkpointModel()
        let v = model.config.vocabularySize
        let prompts: [[Int]] = (0..<6).map { i in (0..<(5 + 7 * i)).map { ($0 * 7 + i * 3) % v } }
        // The paged pass agrees with the model's own forward pass.
        let reference = try model.makePagedCache(blockCount: 8, blockSize: 16)
        let paged = try model.forward(PagedBatch(sequences: [.init(tokens: prompts[5], start: 0, blockTable: [4, 1, 6], logitRows: 1)]),
                                      cache: reference)
        try model.forward(tokens: prompts[5].map(Int32.init), batch: 1, time: prompts[5].count)
        let own = Array(model.logits(row: prompts[5].count - 1))
        XCTAssertLessThan(zip(paged, own).map { abs($0 - $1) }.max()!, 1e-3)

        let expected = try prompts.map { try ServingFixtures.referenceGreedy(model, prompt: $0, maxTokens: 12) }
        let engine = try ServingEngine(model: model, configuration: ServingConfiguration(
            blockSize: 4, blockCount: 24, maxRunning: 6, maxBatchTokens: 10, threads: 2))
        let results = try await ServingFixtures.run(engine, prompts.map {
            GenerationRequest(promptTokens: $0, maxTokens: 12, sampling: SamplingParameters(temperature: 0))
        })
        for (i, r) in results.enumerated() { XCTAssertEqual(r.tokens[0], expected[i], "prompt \(i)") }
        XCTAssertGreaterThan(engine.statistics.preemptions, 0)
        engine.shutdown()
    }

    func testSeededSamplingIsTheSameAtAnyConcurrencyAndSamplesShareThePrompt() async throws {
        let model = try ServingFixtures.checkpointModel()
        let prompt = Array(0..<19)
        let sampling = SamplingParameters(temperature: 1, topP: 0.9, seed: 42)
        let config = ServingConfiguration(blockSize: 4, blockCount: 64, maxRunning: 8, maxBatchTokens: 16, threads: 2)
        let lone = try ServingEngine(model: model, configuration: config)
        let alone = try await ServingFixtures.run(lone, [GenerationRequest(promptTokens: prompt, maxTokens: 15, sampling: sampling)])
        var shifted = sampling
        shifted.seed = 43
        let second = try await ServingFixtures.run(lone, [GenerationRequest(promptTokens: prompt, maxTokens: 15, sampling: shifted)])
        lone.shutdown()

        let busy = try ServingEngine(model: model, configuration: config)
        var others: [GenerationRequest] = []
        for i in 0..<4 {
            let tokens = Array((i * 5)..<(i * 5 + 9 + i))
            others.append(GenerationRequest(promptTokens: tokens, maxTokens: 20, sampling: SamplingParameters(temperature: 0.7, seed: UInt64(i))))
        }
        let results = try await ServingFixtures.run(busy, others + [GenerationRequest(promptTokens: prompt, maxTokens: 15, sampling: sampling, n: 3)])
        let mine = results[4]
        // Sample i draws from seed + i: sample 0 is the lone request, sample 1 the seed-43 one.
        XCTAssertEqual(mine.tokens[0], alone[0].tokens[0])
        XCTAssertEqual(mine.tokens[1], second[0].tokens[0])
        XCTAssertNotEqual(mine.tokens[0], mine.tokens[1])
        XCTAssertEqual(mine.tokens.map { $0.count }, [15, 15, 15])
        XCTAssertEqual(mine.finishes.count, 3)
        XCTAssertEqual(mine.finishes.last?.1.completionTokens, 45)
        busy.shutdown()
    }

    func testStopTokensLogprobsAndUsage() async throws {
        let model = try ServingFixtures.checkpointModel()
        let prompt = [3, 1, 4, 1, 5, 9, 2, 6]
        let greedy = try ServingFixtures.referenceGreedy(model, prompt: prompt, maxTokens: 6)
        let engine = try ServingEngine(model: model, configuration: ServingConfiguration(blockSize: 4, blockCount: 16, threads: 2))
        let stop = greedy[3]
        let expected = Array(greedy.prefix { $0 != stop })
        var tokens: [GeneratedToken] = []
        var finish: (FinishReason, Usage)?
        for try await event in try engine.submit(GenerationRequest(promptTokens: prompt, maxTokens: 6, sampling: SamplingParameters(temperature: 0),
                                                                     stopTokens: [stop], logprobs: 3)) {
            switch event {
            case .token(let t): tokens.append(t)
            case .finished(_, let reason, let usage): finish = (reason, usage)
            }
        }
        XCTAssertEqual(tokens.map(\.token), expected)
        XCTAssertEqual(finish?.0, .stop)
        XCTAssertEqual(finish?.1, Usage(promptTokens: 8, completionTokens: expected.count + 1, cachedPromptTokens: 0))
        for t in tokens {
            // Greedy: the sampled token is the most likely one; log-probabilities sorted, ≤ 0.
            XCTAssertEqual(t.topLogprobs.count, 3)
            XCTAssertEqual(t.topLogprobs.first?.token, t.token)
            XCTAssertEqual(t.topLogprobs.first?.logprob, t.logprob)
            XCTAssertEqual(t.topLogprobs.map(\.logprob), t.topLogprobs.map(\.logprob).sorted(by: >))
            XCTAssertLessThanOrEqual(t.logprob!, 0)
            XCTAssertLessThanOrEqual(t.topLogprobs.map { exp(Double($0.logprob)) }.reduce(0, +), 1 + 1e-6)
        }
        engine.shutdown()
    }

    func testLogprobsAgainstFloat64() {
        let logits: [Float] = [1, 3, -2, 3, 0.5]
        let (lp, top) = Scheduler.logprobs(logits, token: 4, top: 2)
        let z = logits.map { exp(Double($0)) }.reduce(0, +)
        XCTAssertEqual(Double(lp), 0.5 - log(z), accuracy: 1e-6)
        XCTAssertEqual(top.map(\.token), [1, 3])  // ties: lower index first
        XCTAssertEqual(Double(top[0].logprob), 3 - log(z), accuracy: 1e-6)
    }

    func testCancellingAStreamFreesItsBlocks() async throws {
        let model = try ServingFixtures.checkpointModel()
        let engine = try ServingEngine(model: model, configuration: ServingConfiguration(blockSize: 4, blockCount: 32, threads: 2))
        let task = Task {
            var seen = 0
            for try await event in try engine.submit(GenerationRequest(promptTokens: Array(0..<30), maxTokens: 60)) {
                if case .token = event { seen += 1 }
                if seen == 3 { break }  // dropping the stream cancels the request
            }
            return seen
        }
        let seen = try await task.value
        XCTAssertEqual(seen, 3)
        var stats = engine.statistics
        for _ in 0..<200 where stats.blocksUsed > 0 || stats.runningRequests > 0 {
            try await Task.sleep(nanoseconds: 10_000_000)
            stats = engine.statistics
        }
        // Whether the engine stopped before its 60th token depends on how fast the model runs (the
        // stream buffers without back-pressure), so that is asserted step by step in the scheduler
        // test below; here: whatever happened, nothing is left held.
        XCTAssertEqual(stats.blocksUsed, 0)
        XCTAssertEqual(stats.runningRequests, 0)
        engine.shutdown()
    }

    func testCancellingARequestMidDecodeFreesItsBlocksAndEndsItsSamples() throws {
        let model = try ServingFixtures.checkpointModel()
        let scheduler = try Scheduler(model: model, configuration: ServingConfiguration(blockSize: 4, blockCount: 32, threads: 1))
        var events: [GenerationEvent] = []
        var completed = 0
        try scheduler.add(id: 7, request: GenerationRequest(promptTokens: Array(0..<30), maxTokens: 60, n: 2),
                          deliver: { events.append($0) }, complete: { completed += 1 })
        while events.filter({ if case .token = $0 { true } else { false } }).count < 6 { try scheduler.step() }
        XCTAssertGreaterThan(scheduler.statistics.blocksUsed, 0)
        let tokensBefore = events.count
        scheduler.cancel(id: 7)
        // Both samples end as cancelled, at once, with no token after the cancellation.
        XCTAssertEqual(events.count, tokensBefore + 2)
        for event in events.suffix(2) {
            guard case .finished(_, let reason, _) = event else { return XCTFail("expected finished, got \(event)") }
            XCTAssertEqual(reason, .cancelled)
        }
        XCTAssertEqual(completed, 1)
        XCTAssertEqual(scheduler.statistics.blocksUsed, 0)
        XCTAssertEqual(scheduler.statistics.runningRequests, 0)
        XCTAssertFalse(scheduler.hasWork)
        XCTAssertNil(scheduler.requests[7])
    }

    func testRequestsThatCanNeverFitOrOverflowTheQueueAreRefusedAtOnce() throws {
        let model = try ServingFixtures.checkpointModel()  // context 96
        let engine = try ServingEngine(model: model, configuration: ServingConfiguration(blockSize: 4, blockCount: 8, maxWaiting: 0, threads: 2))
        func refusal(_ r: GenerationRequest) -> ServingError? {
            do { _ = try engine.submit(r); return nil } catch { return error as? ServingError }
        }
        XCTAssertEqual(refusal(GenerationRequest(promptTokens: Array(repeating: 1, count: 96), maxTokens: 1)),
                       .promptTooLong(tokens: 96, contextLength: 95))
        XCTAssertEqual(refusal(GenerationRequest(promptTokens: Array(repeating: 1, count: 40), maxTokens: 1)),
                       .promptExceedsCache(tokens: 40, cacheTokens: 31))
        XCTAssertEqual(refusal(GenerationRequest(promptTokens: [1], maxTokens: 0)),
                       .invalidRequest(field: "max_tokens", expected: "≥ 1", got: "0"))
        XCTAssertEqual(refusal(GenerationRequest(promptTokens: [1], maxTokens: 1, n: 17)),
                       .invalidRequest(field: "n", expected: "in 1...16", got: "17"))
        XCTAssertEqual(refusal(GenerationRequest(promptTokens: [61], maxTokens: 1)),
                       .invalidRequest(field: "prompt", expected: "token ids in 0..<61", got: "61"))
        XCTAssertEqual(refusal(GenerationRequest(promptTokens: [1, 2], maxTokens: 4)), .queueFull(limit: 0))
        engine.shutdown()
    }
}

/// Speculative decoding keeps the output of decoding without it, token for token.
final class SpeculationTests: XCTestCase {
    func testPromptLookupFindsTheLatestEarlierOccurrence() {
        XCTAssertEqual(Scheduler.promptLookup([1, 2, 3, 9, 1, 2, 3, 7, 5, 1, 2, 3], count: 3), [7, 5, 1])
        XCTAssertEqual(Scheduler.promptLookup([4, 5, 6, 4, 5], count: 2), [6, 4])
        XCTAssertEqual(Scheduler.promptLookup([4, 5, 6, 4], count: 2), [])  // one token is not enough
        XCTAssertEqual(Scheduler.promptLookup([1, 2, 3], count: 2), [])
        XCTAssertEqual(Scheduler.promptLookup([8, 8, 8], count: 4), [8])
        XCTAssertEqual(Scheduler.promptLookup([4, 5, 6, 4], count: 2, minN: 1), [5, 6])
    }

    func testGreedyOutputIsUnchangedByPromptLookupAndADraftModel() async throws {
        let (model, tokenizer) = try ServingFixtures.llama()
        let texts = ["Repeat after me: the cat sat on the mat, the cat sat on the mat, the cat sat on the",
                     "def add(a, b):\n    return a + b\n\ndef add(a, b):\n", "What is the capital of France?"]
        let prompts = texts.map { tokenizer.encode($0) }
        let expected = try prompts.map { try ServingFixtures.referenceGreedy(model, prompt: $0, maxTokens: 16) }
        for method in [SpeculationMethod.ngram, .draft] {
            // The model drafts for itself: same arithmetic, so every greedy guess is accepted.
            let engine = try ServingEngine(model: model, draft: method == .draft ? model : nil, configuration: ServingConfiguration(
                blockSize: 16, blockCount: 64, maxRunning: 4, maxBatchTokens: 64, threads: 2, speculation: method, speculativeTokens: 4))
            let results = try await ServingFixtures.run(engine, prompts.map {
                GenerationRequest(promptTokens: $0, maxTokens: 16, sampling: SamplingParameters(temperature: 0))
            })
            for (i, r) in results.enumerated() { XCTAssertEqual(r.tokens[0], expected[i], "\(method) prompt \(i)") }
            let stats = engine.statistics
            XCTAssertGreaterThan(stats.speculativeAccepted, 0, "\(method)")
            if method == .draft { XCTAssertEqual(stats.speculativeAccepted, stats.speculativeProposed) }
            // Fewer passes than tokens: accepted guesses came for free.
            XCTAssertLessThan(stats.steps, 3 * 16)
            engine.shutdown()
        }
    }

    func testSeededSamplingIsUnchangedByADifferentDraftModel() async throws {
        let model = try ServingFixtures.checkpointModel()
        let draftConfig = TransformerConfig(layers: 1, heads: 2, kvHeads: 1, width: 32, mlpWidth: 64, context: 96, vocabularySize: 61,
                                            positionEncoding: .rotary, norm: .rmsNorm, activation: .swiglu, bias: false, tiedEmbeddings: true)
        let draft = try ServingFixtures.checkpointModel(draftConfig)
        let prompts: [[Int]] = [Array(0..<12), [5, 6, 7, 5, 6, 7, 5, 6], Array(repeating: 3, count: 20)]
        func run(_ method: SpeculationMethod) async throws -> ([[Int]], EngineStatistics) {
            let engine = try ServingEngine(model: model, draft: draft, configuration: ServingConfiguration(
                blockSize: 4, blockCount: 64, maxBatchTokens: 32, threads: 2, speculation: method, speculativeTokens: 3))
            let results = try await ServingFixtures.run(engine, prompts.enumerated().map { i, p in
                GenerationRequest(promptTokens: p, maxTokens: 20, sampling: SamplingParameters(temperature: i == 0 ? 0 : 0.8, seed: UInt64(i)))
            })
            let stats = engine.statistics
            engine.shutdown()
            return (results.map { $0.tokens[0] }, stats)
        }
        let (plain, _) = try await run(.none)
        for method in [SpeculationMethod.ngram, .draft] {
            let (speculative, stats) = try await run(method)
            XCTAssertEqual(speculative, plain, "\(method)")
            XCTAssertGreaterThan(stats.speculativeProposed, 0, "\(method)")
        }
    }
}
