import Registry
import JSON

/// The JSON bodies of the write endpoints, decoded into typed values.
///
/// Members this server does not know are ignored, so that clients written for later
/// versions keep working. The rules on values (name syntax, ranges) are the core's to check;
/// this only checks shape and JSON types, and says which field is wrong and how.
struct BodyProblem: Error, Equatable {
    let message: String
}

/// POST /register.
struct RegistrationBody: Equatable {
    let service: String
    let id: String?
    let address: String
    let fields: InstanceFields

    static let example = #"{"service":"user-service","address":"http://localhost:8001"}"#

    static func decode(_ body: UnsafeBufferPointer<UInt8>) -> Result<RegistrationBody, BodyProblem> {
        Result { () throws(BodyProblem) in
            let object = try BodyObject(body, example: example)
            var fields = InstanceFields()
            fields.tags = try object.optionalStringArray("tags")
            fields.metadata = try object.optionalStringMap("metadata")
            fields.weight = try object.optionalInteger("weight")
            if object.has("zone") { fields.zone = .some(try object.nullableString("zone")) }
            fields.status = try object.optionalStatus("status")
            if object.has("ttl_seconds") {
                // The number goes to the core as it was sent; it checks the bounds first.
                fields.ttl = try object.nullableNumber("ttl_seconds").map(TTLRequest.seconds) ?? .serverDefault
            }
            return RegistrationBody(service: try object.string("service"), id: try object.optionalString("id"),
                                    address: try object.string("address"), fields: fields)
        }
    }
}

/// POST /heartbeat, /deregister and /status: names one instance by `id`, or by
/// `address` (the default id), with an optional or required `status`.
struct InstanceReferenceBody: Equatable {
    let service: String
    /// The id when given, else the address.
    let id: String
    let status: InstanceStatus?

    static let example = #"{"service":"user-service","address":"http://localhost:8001"}"#

    static func decode(_ body: UnsafeBufferPointer<UInt8>, statusRequired: Bool = false) -> Result<InstanceReferenceBody, BodyProblem> {
        Result { () throws(BodyProblem) in
            let object = try BodyObject(body, example: statusRequired ? #"{"service":"user-service","address":"http://localhost:8001","status":"DOWN"}"# : example)
            let service = try object.string("service")
            let id = try object.optionalString("id")
            let address = try object.optionalString("address")
            guard let reference = id ?? address else {
                throw BodyProblem(message: "missing field 'address' (or 'id'); send a JSON object like \(example)")
            }
            // An address is judged by the address rules whether or not an id comes with it (the
            // id names the instance then): nothing malformed is accepted for being unused.
            if let address, let violation = Violation.checkAddress(address) {
                throw BodyProblem(message: violation.message)
            }
            let status = try object.optionalStatus("status")
            if statusRequired && status == nil {
                throw BodyProblem(message: "missing field 'status'; use one of \(InstanceStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return InstanceReferenceBody(service: service, id: reference, status: status)
        }
    }
}

/// A parsed body that must be a JSON object, with typed accessors whose errors name the field.
private struct BodyObject {
    let value: JSONValue

    init(_ body: UnsafeBufferPointer<UInt8>, example: String) throws(BodyProblem) {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            throw BodyProblem(message: "request body is empty; send a JSON object like \(example)")
        }
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(body)
        } catch {
            throw BodyProblem(message: "request body is not valid JSON: \(error.message) at byte \(error.offset)")
        }
        guard case .object = parsed else {
            throw BodyProblem(message: "request body must be a JSON object like \(example), got \(parsed.kindDescription)")
        }
        value = parsed
    }

    func has(_ name: String) -> Bool { value[member: name] != nil }

    func string(_ name: String) throws(BodyProblem) -> String {
        guard let member = value[member: name] else {
            throw BodyProblem(message: "missing field '\(name)'; send a JSON object like \(RegistrationBody.example)")
        }
        guard case .string(let text) = member else { throw wrongType(name, "a string", member) }
        return text
    }

    func optionalString(_ name: String) throws(BodyProblem) -> String? {
        guard let member = value[member: name] else { return nil }
        guard case .string(let text) = member else { throw wrongType(name, "a string", member) }
        return text
    }

    func nullableString(_ name: String) throws(BodyProblem) -> String? {
        guard let member = value[member: name], member != .null else { return nil }
        guard case .string(let text) = member else { throw wrongType(name, "a string or null", member) }
        return text
    }

    func optionalInteger(_ name: String) throws(BodyProblem) -> Int? {
        guard let member = value[member: name] else { return nil }
        guard case .number(let number) = member else { throw wrongType(name, "an integer", member) }
        guard number.rounded() == number, abs(number) < 1e15 else {
            throw BodyProblem(message: "field '\(name)' must be an integer, got \(Violation.numberText(number))")
        }
        return Int(number)
    }

    func nullableNumber(_ name: String) throws(BodyProblem) -> Double? {
        guard let member = value[member: name], member != .null else { return nil }
        guard case .number(let number) = member else { throw wrongType(name, "a number or null", member) }
        return number
    }

    func optionalStatus(_ name: String) throws(BodyProblem) -> InstanceStatus? {
        guard let text = try optionalString(name) else { return nil }
        guard let status = InstanceStatus(rawValue: text.uppercased()) else {
            throw BodyProblem(message: "field '\(name)' must be one of \(InstanceStatus.allCases.map(\.rawValue).joined(separator: ", ")), got \(Violation.quoted(text))")
        }
        return status
    }

    func optionalStringArray(_ name: String) throws(BodyProblem) -> [String]? {
        guard let member = value[member: name] else { return nil }
        guard case .array(let elements) = member else { throw wrongType(name, "an array of strings", member) }
        var result: [String] = []
        result.reserveCapacity(elements.count)
        for (position, element) in elements.enumerated() {
            guard case .string(let text) = element else {
                throw BodyProblem(message: "field '\(name)' must be an array of strings; element \(position) is \(element.kindDescription)")
            }
            result.append(text)
        }
        return result
    }

    /// An object of string values, returned sorted by key.
    func optionalStringMap(_ name: String) throws(BodyProblem) -> [MetadataEntry]? {
        guard let member = value[member: name] else { return nil }
        guard case .object(let members) = member else { throw wrongType(name, "an object of strings", member) }
        var result: [MetadataEntry] = []
        result.reserveCapacity(members.count)
        for entry in members {
            guard case .string(let text) = entry.value else {
                throw BodyProblem(message: "field '\(name)' must be an object of strings; \(Violation.quoted(entry.name)) is \(entry.value.kindDescription)")
            }
            result.append(MetadataEntry(entry.name, text))
        }
        return result.sorted { $0.key < $1.key }
    }

    private func wrongType(_ name: String, _ expected: String, _ found: JSONValue) -> BodyProblem {
        BodyProblem(message: "field '\(name)' must be \(expected), got \(found.kindDescription)")
    }
}
