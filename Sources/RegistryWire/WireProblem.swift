/// What is wrong with a request or an answer's JSON: which field, and how, in a sentence
/// for the other side.
public struct WireProblem: Error, Equatable, Sendable {
    public let message: String

    public init(message: String) {
        self.message = message
    }
}
