/// The words after the command, sorted into positionals and options: `--name value`,
/// `--name=value`, repeatable where the command allows, and everything after `--` kept as is.
struct Arguments {
    struct Problem: Error {
        let message: String
    }

    private(set) var positionals: [String] = []
    private var options: [String: [String]] = [:]
    /// Everything after `--` (the command that `run` starts).
    private(set) var trailing: [String] = []

    /// `valued` lists the options that take a value, `switches` those that do not.
    init(_ words: ArraySlice<String>, valued: Set<String>, switches: Set<String> = []) throws(Problem) {
        var rest = words
        while let word = rest.popFirst() {
            if word == "--" {
                trailing = Array(rest)
                break
            }
            guard word.hasPrefix("--"), word.count > 2 else {
                positionals.append(word)
                continue
            }
            var name = String(word.dropFirst(2))
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if switches.contains(name) {
                guard value == nil else { throw Problem(message: "--\(name) takes no value") }
                options[name, default: []].append("true")
            } else if valued.contains(name) {
                guard let given = value ?? rest.popFirst() else { throw Problem(message: "--\(name) needs a value") }
                options[name, default: []].append(given)
            } else {
                throw Problem(message: "unknown option --\(name)")
            }
        }
    }

    func values(_ name: String) -> [String] { options[name] ?? [] }
    func value(_ name: String) -> String? { options[name]?.last }
    func isSet(_ name: String) -> Bool { options[name] != nil }

    func positional(_ index: Int, _ what: String) throws(Problem) -> String {
        guard index < positionals.count else { throw Problem(message: "missing \(what)") }
        return positionals[index]
    }

    func expectPositionals(_ count: Int, usage: String) throws(Problem) {
        if positionals.count > count {
            throw Problem(message: "unexpected argument '\(positionals[count])'; usage: \(usage)")
        }
        if positionals.count < count { throw Problem(message: "missing arguments; usage: \(usage)") }
    }
}

/// Parses "10s", "500ms", "2m" or plain seconds: above 0 and at most a day.
func parseInterval(_ text: String) -> Duration? {
    let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    var seconds = Double(text)
    for (suffix, scale) in units where seconds == nil && text.hasSuffix(suffix) {
        seconds = Double(text.dropLast(suffix.count)).map { $0 * scale }
    }
    guard let seconds, seconds.isFinite, seconds > 0, seconds <= 86_400 else { return nil }
    return .nanoseconds(Int64(seconds * 1e9))
}
