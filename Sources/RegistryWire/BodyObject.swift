import JSON
import Registry

/// A parsed body that must be a JSON object, with typed accessors whose errors name the field.
struct BodyObject {
    let value: JSONValue

    init(_ body: UnsafeBufferPointer<UInt8>, example: String) throws(WireProblem) {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            throw WireProblem(message: "request body is empty; send a JSON object like \(example)")
        }
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(body)
        } catch {
            throw WireProblem(message: "request body is not valid JSON: \(error.message) at byte \(error.offset)")
        }
        guard case .object = parsed else {
            throw WireProblem(message: "request body must be a JSON object like \(example), got \(parsed.kindDescription)")
        }
        value = parsed
    }

    func has(_ name: String) -> Bool { value[member: name] != nil }

    /// Refuses a member this body does not take: a typo (`ttl` for `ttl_seconds`, `tag` for
    /// `tags`) must not be dropped in silence, leaving the default in its place.
    func onlyKnown(_ names: [String]) throws(WireProblem) {
        guard case .object(let members) = value else { return }
        for member in members where !names.contains(member.name) {
            throw WireProblem(message: "unknown field \(Violation.quoted(member.name)); this request takes "
                + names.joined(separator: ", "))
        }
    }

    func string(_ name: String, example: String) throws(WireProblem) -> String {
        guard let member = value[member: name] else {
            throw WireProblem(message: "missing field '\(name)'; send a JSON object like \(example)")
        }
        guard case .string(let text) = member else { throw wrongType(name, "a string", member) }
        return text
    }

    func optionalString(_ name: String) throws(WireProblem) -> String? {
        guard let member = value[member: name] else { return nil }
        guard case .string(let text) = member else { throw wrongType(name, "a string", member) }
        return text
    }

    func nullableString(_ name: String) throws(WireProblem) -> String? {
        guard let member = value[member: name], member != .null else { return nil }
        guard case .string(let text) = member else { throw wrongType(name, "a string or null", member) }
        return text
    }

    func optionalInteger(_ name: String) throws(WireProblem) -> Int? {
        guard let member = value[member: name] else { return nil }
        guard case .number(let number) = member else { throw wrongType(name, "an integer", member) }
        guard number.rounded() == number, abs(number) < 1e15 else {
            throw WireProblem(message: "field '\(name)' must be an integer, got \(Violation.numberText(number))")
        }
        return Int(number)
    }

    func nullableNumber(_ name: String) throws(WireProblem) -> Double? {
        guard let member = value[member: name], member != .null else { return nil }
        guard case .number(let number) = member else { throw wrongType(name, "a number or null", member) }
        return number
    }

    func optionalStatus(_ name: String) throws(WireProblem) -> InstanceStatus? {
        guard let text = try optionalString(name) else { return nil }
        guard let status = InstanceStatus(rawValue: text.uppercased()) else {
            throw WireProblem(message: "field '\(name)' must be one of \(InstanceStatus.allCases.map(\.rawValue).joined(separator: ", ")), got \(Violation.quoted(text))")
        }
        return status
    }

    func optionalStringArray(_ name: String) throws(WireProblem) -> [String]? {
        guard let member = value[member: name] else { return nil }
        guard case .array(let elements) = member else { throw wrongType(name, "an array of strings", member) }
        var result: [String] = []
        result.reserveCapacity(elements.count)
        for (position, element) in elements.enumerated() {
            guard case .string(let text) = element else {
                throw WireProblem(message: "field '\(name)' must be an array of strings; element \(position) is \(element.kindDescription)")
            }
            result.append(text)
        }
        return result
    }

    /// An object of string values, returned sorted by key.
    func optionalStringMap(_ name: String) throws(WireProblem) -> [MetadataEntry]? {
        guard let member = value[member: name] else { return nil }
        guard case .object(let members) = member else { throw wrongType(name, "an object of strings", member) }
        var result: [MetadataEntry] = []
        result.reserveCapacity(members.count)
        for entry in members {
            guard case .string(let text) = entry.value else {
                throw WireProblem(message: "field '\(name)' must be an object of strings; \(Violation.quoted(entry.name)) is \(entry.value.kindDescription)")
            }
            result.append(MetadataEntry(entry.name, text))
        }
        return result.sorted { $0.key < $1.key }
    }

    private func wrongType(_ name: String, _ expected: String, _ found: JSONValue) -> WireProblem {
        WireProblem(message: "field '\(name)' must be \(expected), got \(found.kindDescription)")
    }
}
