import Foundation
import Metrics
import Prometheus
import Serving

/// The server's Prometheus metrics: swift-metrics handles made by a `PrometheusMetricsFactory`
/// over a registry of this server's own (not the process-global bootstrap, so that several
/// servers — tests — can live in one process).
///
/// Token counts and latencies are recorded by the HTTP layer as requests run; the engine's
/// gauges and counters (running/waiting requests, KV blocks, prefix-cache hits, preemptions,
/// speculation) are read from its `EngineStatistics` when `/metrics` is scraped.
public final class ServerMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let promptTokens: Metrics.Counter
    private let completionTokens: Metrics.Counter
    private let timeToFirstToken: Metrics.Timer
    private let timePerToken: Metrics.Timer
    private let running: Metrics.Gauge
    private let waiting: Metrics.Gauge
    private let kvUsed: Metrics.Gauge
    private let kvFree: Metrics.Gauge
    private let prefixHits: Metrics.Counter
    private let prefixQueried: Metrics.Counter
    private let preemptions: Metrics.Counter
    private let proposed: Metrics.Counter
    private let accepted: Metrics.Counter
    private let lock = NSLock()
    private var reported = EngineStatistics()

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        let seconds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
        let tokenSeconds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28]
        factory.durationHistogramBuckets = [
            "flash_time_to_first_token_seconds": seconds.map { .milliseconds(Int64($0 * 1000)) },
            "flash_time_per_output_token_seconds": tokenSeconds.map { .microseconds(Int64($0 * 1_000_000)) },
        ]
        promptTokens = Metrics.Counter(label: "flash_prompt_tokens_total", factory: factory)
        completionTokens = Metrics.Counter(label: "flash_generation_tokens_total", factory: factory)
        timeToFirstToken = Metrics.Timer(label: "flash_time_to_first_token_seconds", preferredDisplayUnit: .seconds, factory: factory)
        timePerToken = Metrics.Timer(label: "flash_time_per_output_token_seconds", preferredDisplayUnit: .seconds, factory: factory)
        running = Metrics.Gauge(label: "flash_requests_running", factory: factory)
        waiting = Metrics.Gauge(label: "flash_requests_waiting", factory: factory)
        kvUsed = Metrics.Gauge(label: "flash_kv_blocks_used", factory: factory)
        kvFree = Metrics.Gauge(label: "flash_kv_blocks_free", factory: factory)
        prefixQueried = Metrics.Counter(label: "flash_prefix_cache_queried_tokens_total", factory: factory)
        prefixHits = Metrics.Counter(label: "flash_prefix_cache_hit_tokens_total", factory: factory)
        preemptions = Metrics.Counter(label: "flash_preemptions_total", factory: factory)
        proposed = Metrics.Counter(label: "flash_speculative_proposed_tokens_total", factory: factory)
        accepted = Metrics.Counter(label: "flash_speculative_accepted_tokens_total", factory: factory)
    }

    func recordTimeToFirstToken(_ duration: Duration) { timeToFirstToken.recordNanoseconds(Self.nanoseconds(duration)) }
    func recordTokenLatency(_ duration: Duration) { timePerToken.recordNanoseconds(Self.nanoseconds(duration)) }
    func recordTokens(prompt: Int, completion: Int) {
        promptTokens.increment(by: prompt)
        completionTokens.increment(by: completion)
    }

    /// The Prometheus text exposition, after reading the engine's statistics (when one is loaded).
    public func render(engine: EngineStatistics?) -> String {
        if let s = engine {
            lock.withLock {
                running.record(s.runningRequests)
                waiting.record(s.waitingRequests)
                kvUsed.record(s.blocksUsed)
                kvFree.record(s.blocksFree)
                // Engine counters are cumulative; Prometheus counters only grow by increments.
                let r = reported
                prefixQueried.increment(by: max(0, s.prefixQueriedTokens - r.prefixQueriedTokens))
                prefixHits.increment(by: max(0, s.prefixHitTokens - r.prefixHitTokens))
                preemptions.increment(by: max(0, s.preemptions - r.preemptions))
                proposed.increment(by: max(0, s.speculativeProposed - r.speculativeProposed))
                accepted.increment(by: max(0, s.speculativeAccepted - r.speculativeAccepted))
                reported = s
            }
        }
        return registry.emitToString()
    }

    private static func nanoseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }
}
