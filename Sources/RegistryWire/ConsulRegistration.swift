import JSON
import Registry

/// `PUT /v1/agent/service/register` as Consul's agent takes it: `Name`, `ID` (default the
/// name), `Address` (default: the client's address, which the server supplies), `Port`,
/// `Tags`, `Meta`, `Weights`, and `Check` and/or `Checks` (`HTTP`, `TCP` or `TTL`, with
/// `Interval`, `Timeout`, `DeregisterCriticalServiceAfter`, `Header`, `Method`,
/// `TLSSkipVerify`, `Status`, `CheckID`, `Name`). Field names in any case, with or without
/// underscores, as Consul reads them. A field Consul does not know is refused, as Consul's
/// decoder refuses it; fields it has that change nothing here (`EnableTagOverride`,
/// `TaggedAddresses`, `Namespace`, `Notes`, …) are accepted and ignored; features this
/// registry does not offer (`Kind`, `Connect`, script, gRPC, alias checks, a check's `Body`)
/// are refused rather than dropped, so that a registration never silently means less than it
/// said.
public struct ConsulRegistration: Equatable, Sendable {
    public var name: String
    public var id: String
    /// Nil or empty: the client's own address.
    public var address: String?
    public var port: Int
    public var tags: [String]?
    public var meta: [MetadataEntry]?
    /// `Weights.Passing`.
    public var weight: Int?
    /// Nil when the body has neither `Check` nor `Checks`.
    public var checks: [HealthCheck]?

    /// The metadata key whose value (`http`, `https`, …) is the scheme of the native address
    /// made from `Address` and `Port`; `http` without it.
    public static let schemeKey = "scheme"
    /// Consul's default for an HTTP or TCP check's timeout.
    public static let defaultTimeout = Duration.seconds(10)

    public static let example = #"{"Name":"web","ID":"web-1","Address":"127.0.0.1","Port":8001}"#

    public init(name: String, id: String? = nil, address: String? = nil, port: Int = 0, tags: [String]? = nil,
                meta: [MetadataEntry]? = nil, weight: Int? = nil, checks: [HealthCheck]? = nil) {
        self.name = name
        self.id = id ?? name
        self.address = address
        self.port = port
        self.tags = tags
        self.meta = meta
        self.weight = weight
        self.checks = checks
    }

    public static func decode(_ body: UnsafeBufferPointer<UInt8>) -> Result<ConsulRegistration, WireProblem> {
        Result { () throws(WireProblem) in
            let object = try ConsulObject(parseJSON(body, example: example), path: "")
            try object.onlyKnown(serviceFields)
            if let kind = try object.string("kind", "Kind"), !kind.isEmpty {
                throw WireProblem(message: "Kind \(Violation.quoted(kind)) is not supported: this registry has no service mesh; register a typical service (no Kind)")
            }
            for (key, field) in [("proxy", "Proxy"), ("connect", "Connect")] where object.has(key) {
                if case .object(let members) = object[key]!, members.isEmpty { continue }
                throw WireProblem(message: "\(field) is not supported: this registry has no service mesh")
            }
            guard let name = try object.string("name", "Name"), !name.isEmpty else {
                throw WireProblem(message: "Missing service name")
            }
            var registration = ConsulRegistration(name: name)
            if let id = try object.string("id", "ID"), !id.isEmpty { registration.id = id }
            registration.address = try object.string("address", "Address")
            if let address = registration.address, ["0.0.0.0", "::", "[::]"].contains(address) {
                throw WireProblem(message: "Invalid service address")
            }
            registration.port = try object.integer("port", "Port", range: 0...65_535) ?? 0
            registration.tags = try object.stringList("tags", "Tags")
            registration.meta = try object.stringMap("meta", "Meta")
            if let weights = object["weights"] {
                let inner = try ConsulObject(weights, path: "Weights")
                try inner.onlyKnown(["passing", "warning"])
                registration.weight = try inner.integer("passing", "Passing", range: 0...Int(Int32.max))
                if registration.weight == 0 { throw WireProblem(message: "Invalid Weights: Passing must be greater than 0") }
            }
            var definitions: [(JSONValue, String)] = []
            if let one = object["check"] { definitions.append((one, "Check")) }
            if let list = object["checks"] {
                guard case .array(let elements) = list else {
                    throw WireProblem(message: "field 'Checks' must be a list of check objects, got \(list.kindDescription)")
                }
                for (position, element) in elements.enumerated() where element != .null { definitions.append((element, "Checks[\(position)]")) }
            }
            // An empty check is no check, as in Consul.
            definitions.removeAll { if case .object(let members) = $0.0 { return members.isEmpty }; return false }
            if object.has("check") || object.has("checks") {
                var checks: [HealthCheck] = []
                for (position, (value, path)) in definitions.enumerated() {
                    // Consul's default ids: `service:ID` for a service's only check, `service:ID:N` for each of several.
                    let defaultID = definitions.count > 1 ? "service:\(registration.id):\(position + 1)" : "service:\(registration.id)"
                    checks.append(try check(value, path: path, defaultID: defaultID, service: name))
                }
                registration.checks = checks
            }
            return registration
        }
    }

    /// A body's JSON, or Consul's 400 for it.
    static func parseJSON(_ body: UnsafeBufferPointer<UInt8>, example: String) throws(WireProblem) -> JSONValue {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            throw WireProblem(message: "Request decode failed: the body is empty; send a JSON object like \(example)")
        }
        do throws(JSONParser.Failure) {
            return try JSONParser.parse(body)
        } catch {
            throw WireProblem(message: "Request decode failed: \(error.message) at byte \(error.offset)")
        }
    }

    /// One check definition (of a registration, or `PUT /v1/agent/check/register`'s body).
    public static func check(_ value: JSONValue, path: String, defaultID: String, service: String) throws(WireProblem) -> HealthCheck {
        let object = try ConsulObject(value, path: path)
        try object.onlyKnown(checkFields)
        for (key, kind) in [("args", "script"), ("scriptargs", "script"), ("shell", "Docker"), ("dockercontainerid", "Docker"), ("grpc", "gRPC"),
                            ("h2ping", "H2PING"), ("aliasnode", "alias"), ("aliasservice", "alias"), ("udp", "UDP"),
                            ("osservice", "OSService")] where object.has(key) {
            throw WireProblem(message: "Invalid check: \(kind) checks are not supported by this registry; use HTTP, TCP or TTL")
        }
        if let body = try object.string("body", "Body"), !body.isEmpty {
            throw WireProblem(message: "Invalid check: a check's Body is not supported by this registry; use a check URL that needs no request body")
        }
        if let name = try object.string("tlsservername", "TLSServerName"), !name.isEmpty {
            throw WireProblem(message: "Invalid check: TLSServerName is not supported by this registry; the URL's host is the name checked")
        }
        if try object.bool("tcpusetls", "TCPUseTLS") == true {
            throw WireProblem(message: "Invalid check: TCPUseTLS is not supported by this registry; a TCP check only opens the connection")
        }
        for (key, field) in [("successbeforepassing", "SuccessBeforePassing"), ("failuresbeforewarning", "FailuresBeforeWarning"),
                             ("failuresbeforecritical", "FailuresBeforeCritical")] {
            if let count = try object.integer(key, field, range: 0...Int(Int32.max)), count > 0 {
                throw WireProblem(message: "Invalid check: \(field) is not supported by this registry: each run sets the status")
            }
        }
        let http = try object.string("http", "HTTP")
        let tcp = try object.string("tcp", "TCP")
        let ttl = try object.duration("ttl", "TTL")
        if ttl != nil, try object.duration("interval", "Interval").map({ $0 > .zero }) == true {
            throw WireProblem(message: "Invalid check: Interval and TTL cannot both be specified")
        }
        guard http == nil || tcp == nil else {
            throw WireProblem(message: "Invalid check: give only one of HTTP or TCP")
        }
        let probe: HealthCheck.Probe
        var interval = Duration.zero
        var timeout = defaultTimeout
        if http == nil && tcp == nil {
            guard let ttl, ttl > .zero else { throw WireProblem(message: "Invalid check: TTL must be > 0 for TTL checks") }
            probe = .ttl(ttl)
        } else {
            guard let given = try object.duration("interval", "Interval"), given > .zero else {
                throw WireProblem(message: "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks")
            }
            interval = given
            if let given = try object.duration("timeout", "Timeout"), given > .zero { timeout = given }
            if let url = http {
                var target = HealthCheck.HTTPProbe(url: url)
                if let method = try object.string("method", "Method"), !method.isEmpty { target.method = method.uppercased() }
                if let headers = object["header"] {
                    target.headers = try CheckDefinition.headers(headers, field: object.shown("header", "Header"), listsAllowed: true)
                }
                target.tlsSkipVerify = try object.bool("tlsskipverify", "TLSSkipVerify") ?? false
                probe = .http(target)
            } else {
                let address = tcp!
                guard let endpoint = CheckDefinition.hostPort(address) else {
                    throw WireProblem(message: "Invalid check: TCP must be host:port (an IPv6 address in brackets), got \(Violation.quoted(address))")
                }
                probe = .tcp(host: endpoint.host, port: endpoint.port)
            }
        }
        var status = CheckStatus.critical
        if let text = try object.string("status", "Status"), !text.isEmpty {
            guard let given = CheckStatus(rawValue: text) else {
                throw WireProblem(message: "Status for checks must 'passing', 'warning', 'critical'")
            }
            status = given
        }
        var id = defaultID
        if let given = try object.string("checkid", "CheckID"), !given.isEmpty {
            id = given
        } else if let given = try object.string("id", "ID"), !given.isEmpty {
            id = given
        }
        var name = try object.string("name", "Name") ?? ""
        if name.isEmpty {
            name = "Service '\(service)' check"
            if name.utf8.count > Violation.maxCheckIDLength { name = id }
        }
        return HealthCheck(id: id, name: name, probe: probe, interval: interval, timeout: timeout,
                           deregisterAfter: try object.duration("deregistercriticalserviceafter", "DeregisterCriticalServiceAfter"),
                           status: status)
    }

    /// The native address this registration stands for: `scheme://Address:Port` (an IPv6
    /// address in brackets; the scheme from the `scheme` metadata key, else `http`), or
    /// `Address` alone when there is no port, so that Consul's view gives back what was sent.
    public func nativeAddress(clientAddress: String) -> String {
        var host = address ?? ""
        if host.isEmpty { host = clientAddress }
        guard port > 0 else { return host }
        let scheme = meta?.first(where: { $0.key == Self.schemeKey })?.value.lowercased() ?? "http"
        let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[" + host + "]" : host
        return "\(scheme.isEmpty ? "http" : scheme)://\(bracketed):\(port)"
    }

    /// The native registration: no heartbeat timeout (a Consul service stays until it is
    /// deregistered, or its check is critical for `DeregisterCriticalServiceAfter`).
    public func request(clientAddress: String) -> RegistrationRequest {
        var fields = InstanceFields(tags: tags ?? [], metadata: meta ?? [], ttl: .never, checks: checks)
        fields.weight = weight
        return RegistrationRequest(service: name, address: nativeAddress(clientAddress: clientAddress), id: id, fields: fields)
    }
}

/// The fields of Consul's service definition (`structs.ServiceDefinition`), normalized.
let serviceFields: Set<String> = ["kind", "id", "name", "tags", "address", "taggedaddresses", "meta", "port", "socketpath", "check",
                                  "checks", "weights", "token", "enabletagoverride", "locality", "proxy", "connect", "namespace",
                                  "partition"]
/// The fields of Consul's check type (`structs.CheckType`), normalized; `id` as an alias of `CheckID`.
let checkFields: Set<String> = ["checkid", "id", "name", "status", "notes", "scriptargs", "args", "http", "header", "method", "body",
                                "disableredirects", "tcp", "tcpusetls", "udp", "interval", "aliasnode", "aliasservice",
                                "dockercontainerid", "shell", "grpc", "grpcusetls", "h2ping", "h2pingusetls", "tlsservername",
                                "tlsskipverify", "timeout", "ttl", "successbeforepassing", "failuresbeforewarning",
                                "failuresbeforecritical", "proxyhttp", "proxygrpc", "deregistercriticalserviceafter", "outputmaxsize",
                                "osservice", "serviceid"]

/// `PUT /v1/agent/check/update/{id}`: `{"Status": "passing|warning|critical", "Output": …}`.
public struct ConsulCheckUpdate: Equatable, Sendable {
    public var status: CheckStatus
    public var output: String

    public static func decode(_ body: UnsafeBufferPointer<UInt8>) -> Result<ConsulCheckUpdate, WireProblem> {
        Result { () throws(WireProblem) in
            let object = try ConsulObject(ConsulRegistration.parseJSON(body, example: #"{"Status":"passing","Output":"…"}"#), path: "")
            try object.onlyKnown(["status", "output"])
            let text = try object.string("status", "Status") ?? ""
            guard let status = CheckStatus(rawValue: text) else {
                throw WireProblem(message: "Invalid check status: '\(text)'")
            }
            return ConsulCheckUpdate(status: status, output: try object.string("output", "Output") ?? "")
        }
    }

    public init(status: CheckStatus, output: String) {
        self.status = status
        self.output = output
    }
}
