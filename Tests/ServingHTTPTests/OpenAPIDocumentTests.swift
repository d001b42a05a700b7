import Foundation
import XCTest
import Hummingbird
import HummingbirdTesting
import ServingHTTP

/// docs/openapi.yaml documents every route the server registers (and no other). Response
/// bodies are validated against its schemas by the end-to-end test (Tests/e2e), with the
/// `jsonschema` package as the independent validator.
final class OpenAPIDocumentTests: XCTestCase {
    /// (method, path) pairs under `paths:` — the document's own two-space YAML layout.
    static func documentedRoutes() throws -> Set<String> {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/openapi.yaml")
        let lines = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
        var routes = Set<String>()
        var inPaths = false
        var path: String?
        for line in lines {
            if !line.hasPrefix(" ") && !line.isEmpty { inPaths = line == "paths:"; continue }
            guard inPaths else { continue }
            if line.hasPrefix("  /") && !line.hasPrefix("   ") && line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if let path, line.hasPrefix("    ") && !line.hasPrefix("     ") {
                let key = line.trimmingCharacters(in: .whitespaces).dropLast()
                if ["get", "post", "put", "delete", "patch"].contains(String(key)) { routes.insert("\(key.uppercased()) \(path)") }
            }
        }
        return routes
    }

    func testEveryRegisteredRouteIsDocumentedAndNoOther() throws {
        let documented = try Self.documentedRoutes()
        let served = Set(OpenAIServer.routes.map { "\($0.method) \($0.path)" })
        XCTAssertEqual(served.count, 6)
        XCTAssertEqual(documented, served)
    }

    /// Each documented route reaches a handler of ours (an unrouted path gets the router's own
    /// 404, whose body is not an OpenAI error), and an undocumented one does not.
    func testEveryDocumentedRouteIsRouted() async throws {
        let app = Application(router: try ServingFixtures.server().makeRouter())
        let routes = try Self.documentedRoutes().sorted()
        try await app.test(.router) { client in
            for route in routes {
                let parts = route.split(separator: " ")
                let method: HTTPRequest.Method = parts[0] == "GET" ? .get : .post
                try await client.execute(uri: String(parts[1]), method: method, headers: [.contentType: "application/json"],
                                         body: method == .post ? ByteBuffer(string: "{}") : nil) { response in
                    let handled = response.status != .notFound || (response.body.json["error"] as? [String: Any])?["code"] as? String == "model_not_found"
                    XCTAssertTrue(handled, "\(route) is not routed: \(response.status)")
                }
            }
            try await client.execute(uri: "/v1/undocumented", method: .get) { XCTAssertEqual($0.status, .notFound) }
        }
    }
}
