/// The body of POST /register, /heartbeat and /deregister: `{"service": …, "address": …}`.
///
/// Members other than these two are ignored, so that clients written for later versions
/// of the API keep working here. Name rules are the core's to check; this only checks shape.
struct InstanceRequest: Equatable {
    let service: String
    let address: String

    struct Problem: Error, Equatable {
        let message: String
    }

    static let example = #"{"service":"user-service","address":"http://localhost:8001"}"#

    static func decode(_ body: UnsafeBufferPointer<UInt8>) -> Result<InstanceRequest, Problem> {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            return .failure(Problem(message: "request body is empty; send a JSON object like \(example)"))
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            return .failure(Problem(message: "request body is not valid JSON: \(error.message) at byte \(error.offset)"))
        }
        guard case .object = value else {
            return .failure(Problem(message: "request body must be a JSON object like \(example), got \(value.kindDescription)"))
        }
        let service: String
        let address: String
        switch stringMember("service", of: value) {
        case .success(let text): service = text
        case .failure(let problem): return .failure(problem)
        }
        switch stringMember("address", of: value) {
        case .success(let text): address = text
        case .failure(let problem): return .failure(problem)
        }
        return .success(InstanceRequest(service: service, address: address))
    }

    private static func stringMember(_ name: String, of object: JSONValue) -> Result<String, Problem> {
        guard let member = object[member: name] else {
            return .failure(Problem(message: "missing field '\(name)'; send a JSON object like \(example)"))
        }
        guard case .string(let text) = member else {
            return .failure(Problem(message: "field '\(name)' must be a string, got \(member.kindDescription)"))
        }
        return .success(text)
    }
}
