import Foundation
import XCTest
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
}
