/// The error every public entry point throws for bad input: it names the argument, what was
/// expected and what was given, so a command-line user can fix the call without reading code.
public struct InvalidArgument: Error, CustomStringConvertible, Equatable, Sendable {
    /// The argument or field at fault, e.g. `"k.shape[3]"` or `"--window"`.
    public let argument: String
    /// What a valid value looks like, e.g. `"equal to q.shape[3] (64)"`.
    public let expected: String
    /// What was given instead.
    public let got: String

    /// The error for `argument`, which should have been `expected` and was `got`.
    public init(_ argument: String, expected: String, got: String) {
        self.argument = argument
        self.expected = expected
        self.got = got
    }

    /// `invalid <argument>: expected <expected>, got <got>`.
    public var description: String { "invalid \(argument): expected \(expected), got \(got)" }

    /// Throws unless `condition` holds.
    @inlinable
    public static func require(
        _ condition: Bool, _ argument: @autoclosure () -> String,
        expected: @autoclosure () -> String, got: @autoclosure () -> String
    ) throws {
        if !condition { throw InvalidArgument(argument(), expected: expected(), got: got()) }
    }
}
