import Foundation

/// One turn of a conversation.
public struct ChatMessage: Sendable, Equatable {
    /// `system`, `user` or `assistant`.
    public var role: String
    /// The text of the turn.
    public var content: String
    /// A turn by `role` saying `content`.
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

extension GGUFTokenizer {
    /// The prompt text for `messages` in the model's chat format, ending with the opening of the
    /// assistant's turn. The file's Jinja template (`tokenizer.chat_template`) is recognised by
    /// the family its markers name rather than interpreted: ChatML (`<|im_start|>`, including a
    /// default system prompt written into the template, as SmolLM's is) and Llama 3
    /// (`<|start_header_id|>`). Throws for templates of other families.
    public func applyChatTemplate(_ messages: [ChatMessage]) throws -> String {
        guard let template = chatTemplate else { throw GGUFError.missingMetadata("tokenizer.chat_template") }
        if template.contains("<|im_start|>") {
            var text = ""
            if messages.first?.role != "system", let system = Self.defaultSystemPrompt(in: template) {
                text += "<|im_start|>system\n\(system)<|im_end|>\n"
            }
            for message in messages { text += "<|im_start|>\(message.role)\n\(message.content)<|im_end|>\n" }
            return text + "<|im_start|>assistant\n"
        }
        if template.contains("<|start_header_id|>") {
            var text = bosToken.map { tokens[$0] } ?? ""
            for message in messages {
                text += "<|start_header_id|>\(message.role)<|end_header_id|>\n\n\(message.content)<|eot_id|>"
            }
            return text + "<|start_header_id|>assistant<|end_header_id|>\n\n"
        }
        throw GGUFError.wrongMetadataType(key: "tokenizer.chat_template", expected: "a ChatML or Llama 3 template")
    }

    /// The system prompt a ChatML template inserts when the conversation has none: the literal
    /// between `'<|im_start|>system\n` and `<|im_end|>` in the template source.
    static func defaultSystemPrompt(in template: String) -> String? {
        let marker = "'<|im_start|>system\n"
        guard let start = template.range(of: marker) else { return nil }
        let rest = template[start.upperBound...]
        guard let end = rest.range(of: "<|im_end|>") else { return nil }
        return String(rest[..<end.lowerBound])
    }
}
