import Foundation
import Hummingbird
import Serving

/// An error the API answers with: an HTTP status and an OpenAI-style body
/// `{"error": {"message", "type", "param", "code"}}`.
public struct APIError: Error, Equatable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(status: HTTPResponse.Status, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { "\(status.code) \(type): \(message)" }

    /// 400: a request the server will never accept as sent.
    public static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// The API error for the engine's refusal: 503 when it is busy or stopping (retry later),
    /// 400 naming the limit when the request can never be served.
    public static func from(_ error: ServingError) -> APIError {
        switch error {
        case .queueFull(let limit):
            APIError(status: .serviceUnavailable, message: "the server is busy: \(limit) requests are already waiting (--max-waiting); retry later",
                     type: "server_overloaded", code: "queue_full")
        case .promptTooLong(let tokens, let limit):
            .invalid("the prompt has \(tokens) tokens, more than the model's context length allows: at most \(limit) "
                     + "(context length \(limit + 1), less one position for a generated token)",
                     param: "prompt", code: "context_length_exceeded")
        case .promptExceedsCache(let tokens, let limit):
            .invalid("the prompt has \(tokens) tokens, more than the server's whole KV cache holds: at most \(limit) "
                     + "(--kv-cache-tokens \(limit + 1), less one position for a generated token)",
                     param: "prompt", code: "kv_cache_exceeded")
        case .invalidRequest(let field, _, _):
            .invalid(error.description, param: field)
        case .shutDown:
            APIError(status: .serviceUnavailable, message: "the server is shutting down", type: "server_shutting_down")
        }
    }

    /// A decoding failure of the request body, naming the field and what it should be.
    public static func from(decoding error: Error) -> APIError {
        func path(_ keys: [CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop(while: { $0 == "." }).description
        }
        switch error {
        case DecodingError.typeMismatch(let type, let context):
            let field = path(context.codingPath)
            return .invalid("'\(field)' has the wrong type: expected \(Self.jsonType(type))", param: field)
        case DecodingError.valueNotFound(let type, let context):
            let field = path(context.codingPath)
            return .invalid("'\(field)' must not be null: expected \(Self.jsonType(type))", param: field)
        case DecodingError.keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            return .invalid("'\(field)' is required", param: field)
        case DecodingError.dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return .invalid("the request body is not valid JSON: \(context.debugDescription)")
            }
            let field = path(context.codingPath)
            return .invalid("'\(field)': \(context.debugDescription)", param: field)
        case let error as APIError:
            return error
        default:
            return .invalid("the request body could not be read: \(error)")
        }
    }

    private static func jsonType(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type, is UInt64.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is [Any].Type: "an array"
        default: "\(type)".lowercased().contains("dictionary") ? "an object" : "a value of type \(type)"
        }
    }

    struct Body: Encodable {
        struct Detail: Encodable {
            var message: String
            var type: String
            var param: String?
            var code: String?
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(message, forKey: .message)
                try c.encode(type, forKey: .type)
                try c.encode(param, forKey: .param)  // explicit null, as OpenAI sends
                try c.encode(code, forKey: .code)
            }
            enum CodingKeys: String, CodingKey { case message, type, param, code }
        }
        var error: Detail
    }

    var body: Body { Body(error: .init(message: message, type: type, param: param, code: code)) }
}
