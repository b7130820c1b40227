import JSON
import Registry

/// A check as `POST /register` takes it, in `check` (one) or `checks` (a list):
/// `{"http": URL, "method", "headers": {name: value}, "tls_skip_verify"}` or
/// `{"tcp": "host:port"}`, with `interval` (default 10s), `timeout` (default the interval, at
/// most 10 s), `deregister_after`, `id`, `name` and the initial `status` (default critical,
/// as Consul: an instance is listed once its check first passes). Durations are Go's
/// (`10s`, `1m30s`, `500ms`) or numbers of seconds.
///
/// A check without an id is named as Consul names a service's inline checks: `service:ID`
/// for the only one, `service:ID:N` (from 1) for each of a list, where ID is the instance's.
public enum CheckDefinition {
    static let members = ["http", "tcp", "method", "headers", "tls_skip_verify", "interval", "timeout", "deregister_after",
                          "id", "name", "status"]
    public static let defaultInterval = Duration.seconds(10)

    /// The checks of a registration body's `check` and `checks` members, nil when it has neither.
    static func decode(from object: BodyObject, instance: String) throws(WireProblem) -> [HealthCheck]? {
        if object.has("check") && object.has("checks") {
            throw WireProblem(message: "send either 'check' (one) or 'checks' (a list), not both")
        }
        if let one = object.value[member: "check"] {
            if one == .null { return [] }
            return [try decode(one, field: "check", defaultID: "service:" + instance)]
        }
        guard let list = object.value[member: "checks"] else { return nil }
        if list == .null { return [] }
        guard case .array(let elements) = list else {
            throw WireProblem(message: "field 'checks' must be an array of check objects, got \(list.kindDescription)")
        }
        var checks: [HealthCheck] = []
        for (position, element) in elements.enumerated() {
            checks.append(try decode(element, field: "checks[\(position)]", defaultID: "service:\(instance):\(position + 1)"))
        }
        return checks
    }

    static func decode(_ value: JSONValue, field: String, defaultID: String) throws(WireProblem) -> HealthCheck {
        guard case .object(let members) = value else {
            throw WireProblem(message: "field '\(field)' must be an object like {\"http\":\"http://127.0.0.1:8001/health\",\"interval\":\"10s\"}, got \(value.kindDescription)")
        }
        for member in members where !Self.members.contains(member.name) {
            throw WireProblem(message: "unknown field \(Violation.quoted(member.name)) in '\(field)'; a check takes " + Self.members.joined(separator: ", "))
        }
        // A member is given or left out: null is not a value here.
        func string(_ name: String) throws(WireProblem) -> String? {
            guard let member = value[member: name] else { return nil }
            guard case .string(let text) = member else { throw WireProblem(message: "field '\(field).\(name)' must be a string, got \(member.kindDescription)") }
            return text
        }
        func duration(_ name: String) throws(WireProblem) -> Duration? {
            guard let member = value[member: name] else { return nil }
            switch member {
            case .string(let text):
                guard let parsed = DurationText.parse(text) else {
                    throw WireProblem(message: "field '\(field).\(name)' must be a duration like 10s, 1m30s or 500ms, got \(Violation.quoted(text))")
                }
                return parsed
            case .number(let seconds) where seconds >= 0 && seconds <= 3_153_600_000:
                return .nanoseconds(Int64((seconds * 1e9).rounded()))
            default:
                throw WireProblem(message: "field '\(field).\(name)' must be a duration like \"10s\" or a number of seconds, got \(member.kindDescription)")
            }
        }
        func finish(_ probe: HealthCheck.Probe) throws(WireProblem) -> HealthCheck {
            let interval = try duration("interval") ?? defaultInterval
            let timeout = try duration("timeout") ?? min(interval, HealthCheck.defaultTimeout)
            var status = CheckStatus.critical
            if let text = try string("status") {
                guard let given = CheckStatus(rawValue: text.lowercased()) else {
                    throw WireProblem(message: "field '\(field).status' must be passing, warning or critical, got \(Violation.quoted(text))")
                }
                status = given
            }
            return HealthCheck(id: try string("id") ?? defaultID, name: try string("name"), probe: probe, interval: interval,
                               timeout: timeout, deregisterAfter: try duration("deregister_after"), status: status)
        }

        let http = try string("http")
        let tcp = try string("tcp")
        switch (http, tcp) {
        case (let url?, nil):
            var probe = HealthCheck.HTTPProbe(url: url)
            if let method = try string("method") { probe.method = method.uppercased() }
            probe.headers = try headers(value[member: "headers"], field: field + ".headers", listsAllowed: false)
            if let skip = value[member: "tls_skip_verify"] {
                guard case .bool(let flag) = skip else { throw WireProblem(message: "field '\(field).tls_skip_verify' must be true or false") }
                probe.tlsSkipVerify = flag
            }
            return try finish(.http(probe))
        case (nil, let address?):
            guard let endpoint = hostPort(address) else {
                throw WireProblem(message: "field '\(field).tcp' must be host:port (an IPv6 address in brackets), got \(Violation.quoted(address))")
            }
            return try finish(.tcp(host: endpoint.host, port: endpoint.port))
        case (nil, nil):
            throw WireProblem(message: "field '\(field)' needs 'http' (a URL) or 'tcp' (host:port)")
        case (_?, _?):
            throw WireProblem(message: "field '\(field)' has both 'http' and 'tcp'; a check is one or the other")
        }
    }

    /// `{"X-A": "v", "X-B": ["v1", "v2"]}` (Consul's form is the list) as name-value pairs, in order.
    /// `listsAllowed`: Consul's form; the native API takes one value per name.
    static func headers(_ value: JSONValue?, field: String, listsAllowed: Bool = true) throws(WireProblem) -> [MetadataEntry] {
        guard let value else { return [] }
        guard case .object(let members) = value else {
            throw WireProblem(message: "field '\(field)' must be an object of header names to a value or a list of values")
        }
        var result: [MetadataEntry] = []
        for member in members {
            switch member.value {
            case .string(let text):
                result.append(MetadataEntry(member.name, text))
            case .array(let values) where listsAllowed:
                for element in values {
                    guard case .string(let text) = element else {
                        throw WireProblem(message: "field '\(field)': the values of \(Violation.quoted(member.name)) must be strings")
                    }
                    result.append(MetadataEntry(member.name, text))
                }
            default:
                throw WireProblem(message: "field '\(field)': \(Violation.quoted(member.name)) must be a string" + (listsAllowed ? " or a list of strings" : ""))
            }
        }
        return result
    }

    /// `host:port`, `[v6]:port`: the host without brackets and the port, or nil.
    public static func hostPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = text[..<colon]
        let portText = text[text.index(after: colon)...]
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText) else { return nil }
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { return nil }
            host = host.dropFirst().dropLast()
        } else if host.contains(":") {
            return nil
        }
        guard !host.isEmpty else { return nil }
        return (String(host), port)
    }

    /// The member's JSON, as `decode` reads it back.
    static func encode(_ check: HealthCheck, into json: inout JSONWriter) {
        json.raw("{\"id\":")
        json.string(check.id)
        json.raw(",\"name\":")
        json.string(check.name)
        switch check.probe {
        case .http(let http):
            json.raw(",\"http\":")
            json.string(http.url)
            json.raw(",\"method\":")
            json.string(http.method)
            if !http.headers.isEmpty {
                json.raw(",\"headers\":{")
                json.members(http.headers)
                json.raw("}")
            }
            if http.tlsSkipVerify { json.raw(",\"tls_skip_verify\":true") }
        case .tcp(let host, let port):
            json.raw(",\"tcp\":")
            json.string(HealthCheck.hostPort(host: host, port: port))
        case .ttl:
            break
        }
        json.raw(",\"interval\":")
        json.string(DurationText.format(check.interval))
        json.raw(",\"timeout\":")
        json.string(DurationText.format(check.timeout))
        if let after = check.deregisterAfter {
            json.raw(",\"deregister_after\":")
            json.string(DurationText.format(after))
        }
        json.raw(",\"status\":\"")
        json.raw(check.status.rawValue)
        json.raw("\"}")
    }
}
