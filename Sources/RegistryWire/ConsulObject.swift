import JSON
import Registry

/// A JSON object as Consul's API reads one: member names matched without regard to case or
/// underscores (`DeregisterCriticalServiceAfter`, `deregistercriticalserviceafter` and
/// `deregister_critical_service_after` are one field), and `null` taken as absent, as Go's
/// decoder does for Go clients that send every field.
struct ConsulObject {
    /// By normalized name: the value and the name as it was sent (for messages).
    private var members: [String: (name: String, value: JSONValue)] = [:]
    /// The path of this object in messages (`Check`, `Checks[1]`); empty for the body.
    let path: String

    init(_ value: JSONValue, path: String) throws(WireProblem) {
        self.path = path
        guard case .object(let list) = value else {
            throw WireProblem(message: "\(path.isEmpty ? "the body" : path) must be a JSON object, got \(value.kindDescription)")
        }
        for member in list where member.value != .null {
            let key = Self.normalized(member.name)
            if let earlier = members[key] {
                throw WireProblem(message: "field \(Violation.quoted(member.name)) is given twice (also as \(Violation.quoted(earlier.name)))"
                    + (path.isEmpty ? "" : " in \(path)"))
            }
            members[key] = (member.name, member.value)
        }
    }

    static func normalized(_ name: String) -> String {
        String(decoding: name.utf8.compactMap { byte -> UInt8? in
            if byte == UInt8(ascii: "_") { return nil }
            return byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
        }, as: UTF8.self)
    }

    /// The member named (in normalized form) `key`.
    subscript(_ key: String) -> JSONValue? { members[key]?.value }

    func has(_ key: String) -> Bool { members[key] != nil }

    /// The name as sent, for a message.
    func shown(_ key: String, _ fallback: String) -> String {
        (path.isEmpty ? "" : path + ".") + (members[key]?.name ?? fallback)
    }

    func string(_ key: String, _ name: String) throws(WireProblem) -> String? {
        guard let value = self[key] else { return nil }
        guard case .string(let text) = value else {
            throw WireProblem(message: "field '\(shown(key, name))' must be a string, got \(value.kindDescription)")
        }
        return text
    }

    func bool(_ key: String, _ name: String) throws(WireProblem) -> Bool? {
        guard let value = self[key] else { return nil }
        guard case .bool(let flag) = value else {
            throw WireProblem(message: "field '\(shown(key, name))' must be true or false, got \(value.kindDescription)")
        }
        return flag
    }

    func integer(_ key: String, _ name: String, range: ClosedRange<Int>) throws(WireProblem) -> Int? {
        guard let value = self[key] else { return nil }
        guard case .number(let number) = value, number.rounded() == number, number >= Double(range.lowerBound),
              number <= Double(range.upperBound) else {
            var found = value.kindDescription
            if case .number(let number) = value { found = Violation.numberText(number) }
            throw WireProblem(message: "field '\(shown(key, name))' must be an integer from \(range.lowerBound) to \(range.upperBound), got \(found)")
        }
        return Int(number)
    }

    func stringList(_ key: String, _ name: String) throws(WireProblem) -> [String]? {
        guard let value = self[key] else { return nil }
        guard case .array(let elements) = value else {
            throw WireProblem(message: "field '\(shown(key, name))' must be a list of strings, got \(value.kindDescription)")
        }
        var result: [String] = []
        for (position, element) in elements.enumerated() {
            guard case .string(let text) = element else {
                throw WireProblem(message: "field '\(shown(key, name))' must be a list of strings; element \(position) is \(element.kindDescription)")
            }
            result.append(text)
        }
        return result
    }

    /// An object of strings, sorted by key (metadata's form).
    func stringMap(_ key: String, _ name: String) throws(WireProblem) -> [MetadataEntry]? {
        guard let value = self[key] else { return nil }
        guard case .object(let list) = value else {
            throw WireProblem(message: "field '\(shown(key, name))' must be an object of strings, got \(value.kindDescription)")
        }
        var result: [MetadataEntry] = []
        for member in list {
            guard case .string(let text) = member.value else {
                throw WireProblem(message: "field '\(shown(key, name))': \(Violation.quoted(member.name)) must be a string, got \(member.value.kindDescription)")
            }
            result.append(MetadataEntry(member.name, text))
        }
        return result.sorted { $0.key < $1.key }
    }

    /// Refuses a member Consul itself does not know, as its decoder does (a typo must not
    /// be dropped in silence).
    func onlyKnown(_ keys: Set<String>) throws(WireProblem) {
        for (key, member) in members where !keys.contains(key) {
            throw WireProblem(message: "Request decode failed: json: unknown field \(Violation.quoted(member.name))"
                + (path.isEmpty ? "" : " in \(path)"))
        }
    }

    var isEmpty: Bool { members.isEmpty }

    /// A Go duration (`10s`, `1m30s`, `120000ms`), as Consul's API writes them, or a number
    /// of nanoseconds (Go's own encoding of a duration).
    func duration(_ key: String, _ name: String) throws(WireProblem) -> Duration? {
        if case .number(let nanoseconds)? = self[key] {
            guard nanoseconds >= 0, nanoseconds <= 100 * 365 * 86_400 * 1e9, nanoseconds.rounded() == nanoseconds else {
                throw WireProblem(message: "Request decode failed: field '\(shown(key, name))' must be a duration, got \(Violation.numberText(nanoseconds))")
            }
            return .nanoseconds(Int64(nanoseconds))
        }
        guard let text = try string(key, name) else { return nil }
        if text.isEmpty { return nil }
        guard let parsed = DurationText.parse(text) else {
            throw WireProblem(message: "Request decode failed: time: invalid duration \(Violation.quoted(text)) in '\(shown(key, name))'")
        }
        return parsed
    }
}
