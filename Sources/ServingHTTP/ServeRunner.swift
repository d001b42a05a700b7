import Foundation
import Hummingbird
import Serving
import Logging
import ServiceLifecycle

/// Runs `flash serve`: the HTTP server starts listening at once (`/health` answers 503), the
/// model loads on a thread of its own, and the server is ready when both are done. SIGINT or
/// SIGTERM shuts down gracefully: the engine stops taking requests, running ones get
/// `shutdownGrace` to finish before they are cancelled, then the server closes its
/// connections and `run` returns.
public struct ServeRunner: Sendable {
    public var host: String
    public var port: Int
    public var options: ServerOptions
    public var shutdownGrace: Duration
    /// Loads the served model (starting its engine) and the optional embedding model (slow;
    /// runs off the async threads).
    public var load: @Sendable () throws -> (model: ServedModel, embedder: Embedder?)
    /// Progress lines (the address, readiness); stderr by default.
    public var report: @Sendable (String) -> Void

    public init(host: String, port: Int, options: ServerOptions, shutdownGrace: Duration = .seconds(10),
                load: @escaping @Sendable () throws -> (model: ServedModel, embedder: Embedder?),
                report: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        self.host = host
        self.port = port
        self.options = options
        self.shutdownGrace = shutdownGrace
        self.load = load
        self.report = report
    }

    public func run() async throws {
        let slot = ModelSlot()
        let server = OpenAIServer(slot: slot, options: options)
        let readiness = Readiness(report: report)
        var logger = Logger(label: "flash-serve")
        logger.logLevel = .warning
        let app = Application(
            router: server.makeRouter(),
            configuration: .init(address: .hostname(host, port: port), serverName: "flash"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? port
                readiness.listening(at: "http://\(host):\(port)")
            },
            logger: logger)
        let engineService = EngineService(slot: slot, load: load, grace: shutdownGrace, readiness: readiness)
        // Reverse order on shutdown: the engine first (finish or cancel generations), then the
        // server, whose quiescing waits for the connections those generations hold open.
        let group = ServiceGroup(configuration: .init(services: [app, engineService],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        report("flash serve: shut down")
    }
}

/// Prints the address when the server listens, and "ready" once the model is loaded too.
final class Readiness: @unchecked Sendable {
    private let lock = NSLock()
    private var address: String?
    private var model: String?
    private let report: @Sendable (String) -> Void
    init(report: @escaping @Sendable (String) -> Void) { self.report = report }

    func listening(at address: String) {
        report("flash serve: listening on \(address)")
        lock.withLock { self.address = address }
        announce()
    }

    func loaded(_ model: String) {
        lock.withLock { self.model = model }
        announce()
    }

    private func announce() {
        let line: String? = lock.withLock {
            guard let address, let model else { return nil }
            defer { self.model = nil }  // announce once
            return "flash serve: ready: \(model) at \(address)/v1"
        }
        if let line { report(line) }
    }
}

/// Loads the model, publishes it, and on graceful shutdown drains the engine.
struct EngineService: Service {
    let slot: ModelSlot
    let load: @Sendable () throws -> (model: ServedModel, embedder: Embedder?)
    let grace: Duration
    let readiness: Readiness

    func run() async throws {
        let loaded: (model: ServedModel, embedder: Embedder?)
        do {
            loaded = try await withCheckedThrowingContinuation { continuation in
                Thread.detachNewThread { continuation.resume(with: Result { try load() }) }
            }
        } catch {
            slot.failLoading("\(error)")
            throw error
        }
        slot.finishLoading(model: loaded.model, embedder: loaded.embedder)
        readiness.loaded(loaded.model.id)
        try? await gracefulShutdown()
        await loaded.model.engine.shutdown(gracePeriod: grace)
    }
}
