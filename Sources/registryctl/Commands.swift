#if canImport(Glibc)
import Glibc
#endif
import JSON
import Registry
import RegistryClient
import RegistryWire

/// How registryctl ends, for scripts to branch on (documented in `usage` and the README).
enum ExitCode {
    static let ok: Int32 = 0
    /// The registry refused the request (a 4xx other than 404, or a 5xx).
    static let refused: Int32 = 1
    static let usage: Int32 = 2
    /// No answer: connection refused, timed out, or not a registry.
    static let unreachable: Int32 = 3
    /// No such service or instance (404).
    static let notFound: Int32 = 4
}

/// What every command shares: where the registry is, and how to print.
struct Context {
    let connection: RegistryConnection
    let json: Bool

    /// Writes a line to stdout at once (unbuffered: `watch` output must not wait in a buffer
    /// when piped into another program).
    func out(_ text: String) {
        let line = text + "\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
    }

    func fail(_ message: String, _ code: Int32) -> Int32 {
        printError("registryctl: \(message)")
        return code
    }

    /// Sends a request; prints a failure and returns its exit code, or returns the reply.
    func call(_ method: RegistryConnection.Method, _ path: String, body: [UInt8]? = nil) -> Result<RegistryConnection.Reply, CommandFailure> {
        do {
            return .success(try connection.call(method, path, body: body))
        } catch {
            return .failure(CommandFailure(code: ExitCode.unreachable, message: error.message))
        }
    }

    /// Sends a request and ends the command: prints the answer (through `success` for people)
    /// or the failure, and returns the exit code.
    func perform(_ method: RegistryConnection.Method, _ path: String, body: [UInt8]? = nil,
                 printing success: (RegistryConnection.Reply) -> String?) -> Int32 {
        switch call(method, path, body: body) {
        case .failure(let failure): return fail(failure.message, failure.code)
        case .success(let reply): return finish(reply, printing: success)
        }
    }

    /// The exit code for an answer: 0 for 2xx, 4 for 404, 1 otherwise (with the registry's
    /// message on stderr).
    func finish(_ reply: RegistryConnection.Reply, notFound: String? = nil,
                printing success: (RegistryConnection.Reply) -> String?) -> Int32 {
        switch reply.status {
        case 200..<300:
            if json {
                out(reply.text)
            } else if let text = success(reply) {
                out(text)
            }
            return ExitCode.ok
        case 404:
            if json { out(reply.text) }
            let message = reply.message ?? "not found"
            return fail(notFound.map { "\($0) (\(message))" } ?? message, ExitCode.notFound)
        default:
            if json { out(reply.text) }
            return fail("the registry answered \(reply.status): \(reply.message ?? reply.text)", ExitCode.refused)
        }
    }
}

struct CommandFailure: Error {
    let code: Int32
    let message: String
}

func printError(_ message: String) {
    let line = message + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

// MARK: Writes

/// The options every registration takes, shared by `register` and `run`.
let registrationOptions: Set<String> = ["id", "tag", "meta", "weight", "zone", "status", "ttl", "check-http", "check-tcp",
                                        "check-interval", "check-timeout", "check-deregister-after"]

func registration(service: String, address: String, from arguments: Arguments) throws(Arguments.Problem) -> RegistrationRequest {
    var spec = RegistrationRequest(service: service, address: address, id: arguments.value("id"))
    if arguments.isSet("tag") { spec.fields.tags = arguments.values("tag") }
    if arguments.isSet("meta") {
        var metadata: [MetadataEntry] = []
        for pair in arguments.values("meta") {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw Arguments.Problem(message: "--meta takes KEY=VALUE, got '\(pair)'")
            }
            metadata.append(MetadataEntry(String(pair[..<equals]), String(pair[pair.index(after: equals)...])))
        }
        spec.fields.metadata = metadata
    }
    if let weight = arguments.value("weight") {
        guard let value = Int(weight) else { throw Arguments.Problem(message: "--weight takes an integer, got '\(weight)'") }
        spec.fields.weight = value
    }
    if let zone = arguments.value("zone") { spec.fields.zone = .some(zone) }
    spec.fields.status = try arguments.value("status").map { text throws(Arguments.Problem) in try parseStatus(text, option: "--status") }
    if let ttl = arguments.value("ttl") {
        guard let duration = parseInterval(ttl) else { throw Arguments.Problem(message: "--ttl takes seconds (30, 30s, 500ms), got '\(ttl)'") }
        spec.fields.ttl = .seconds(Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }
    spec.fields.checks = try check(from: arguments, instance: spec.id ?? address)
    return spec
}

/// `--check-http URL` or `--check-tcp HOST:PORT`, with `--check-interval`, `--check-timeout`
/// and `--check-deregister-after` (Go durations, as the API takes them); nil without either.
func check(from arguments: Arguments, instance: String) throws(Arguments.Problem) -> [HealthCheck]? {
    func duration(_ option: String) throws(Arguments.Problem) -> Duration? {
        guard let text = arguments.value(option) else { return nil }
        guard let parsed = DurationText.parse(text) ?? Double(text).map({ Duration.nanoseconds(Int64(($0 * 1e9).rounded())) }) else {
            throw Arguments.Problem(message: "--\(option) takes a duration (10s, 1m30s, 500ms), got '\(text)'")
        }
        return parsed
    }
    let probe: HealthCheck.Probe
    switch (arguments.value("check-http"), arguments.value("check-tcp")) {
    case (let url?, nil):
        probe = .http(HealthCheck.HTTPProbe(url: url))
    case (nil, let address?):
        guard let endpoint = CheckDefinition.hostPort(address) else {
            throw Arguments.Problem(message: "--check-tcp takes HOST:PORT, got '\(address)'")
        }
        probe = .tcp(host: endpoint.host, port: endpoint.port)
    case (nil, nil):
        for option in ["check-interval", "check-timeout", "check-deregister-after"] where arguments.isSet(option) {
            throw Arguments.Problem(message: "--\(option) needs --check-http URL or --check-tcp HOST:PORT")
        }
        return nil
    case (_?, _?):
        throw Arguments.Problem(message: "give --check-http or --check-tcp, not both")
    }
    let interval = try duration("check-interval") ?? CheckDefinition.defaultInterval
    return [HealthCheck(id: "service:" + instance, probe: probe, interval: interval,
                        timeout: try duration("check-timeout") ?? min(interval, HealthCheck.defaultTimeout),
                        deregisterAfter: try duration("check-deregister-after"))]
}

/// A status word in any case, or a usage error that lists the four.
func parseStatus(_ text: String, option: String) throws(Arguments.Problem) -> InstanceStatus {
    guard let status = InstanceStatus(rawValue: text.uppercased()) else {
        throw Arguments.Problem(message: "\(option) takes one of \(InstanceStatus.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text)'")
    }
    return status
}

func register(_ context: Context, _ words: ArraySlice<String>) throws(Arguments.Problem) -> Int32 {
    let arguments = try Arguments(words, valued: registrationOptions)
    try arguments.expectPositionals(2, usage: "registryctl register SERVICE ADDRESS [--id ID] [--tag T]… [--meta K=V]… [--weight N] [--zone Z] [--status S] [--ttl SECONDS] [--check-http URL | --check-tcp HOST:PORT [--check-interval D] [--check-timeout D] [--check-deregister-after D]]")
    let spec = try registration(service: arguments.positionals[0], address: arguments.positionals[1], from: arguments)
    return context.perform(.post, "/register", body: spec.encode()) { $0.message }
}

/// `heartbeat`, `deregister` and `status`: one instance by service and address (or id).
func instanceCommand(_ context: Context, _ words: ArraySlice<String>, route: String) throws(Arguments.Problem) -> Int32 {
    let arguments = try Arguments(words, valued: route == "/heartbeat" ? ["status"] : [])
    let status: InstanceStatus?
    if route == "/status" {
        try arguments.expectPositionals(3, usage: "registryctl status SERVICE ADDRESS UP|STARTING|DOWN|OUT_OF_SERVICE")
        status = try parseStatus(arguments.positionals[2], option: "the status")
    } else {
        try arguments.expectPositionals(2, usage: "registryctl \(route.dropFirst()) SERVICE ADDRESS\(route == "/heartbeat" ? " [--status S]" : "")")
        status = try arguments.value("status").map { text throws(Arguments.Problem) in try parseStatus(text, option: "--status") }
    }
    // The second word is sent as the id: an instance registered without one has its address
    // as its id, so this names either kind.
    let reference = InstanceReference(service: arguments.positionals[0], id: arguments.positionals[1], status: status)
    return context.perform(.post, route, body: reference.encode()) { $0.message }
}

// MARK: Reads

func discover(_ context: Context, _ words: ArraySlice<String>) throws(Arguments.Problem) -> Int32 {
    let arguments = try Arguments(words, valued: ["tag", "zone", "meta", "status", "health", "pick", "limit"])
    try arguments.expectPositionals(1, usage: "registryctl discover SERVICE [--tag T]… [--zone Z] [--meta K=V]… [--status S|any] [--health passing|critical|any] [--pick round-robin|random|weighted] [--limit N]")
    var query: [(name: String, value: String)] = arguments.values("tag").map { ("tag", $0) }
    if let zone = arguments.value("zone") { query.append(("zone", zone)) }
    for pair in arguments.values("meta") {
        guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
            throw Arguments.Problem(message: "--meta takes KEY=VALUE, got '\(pair)'")
        }
        query.append(("meta." + pair[..<equals], String(pair[pair.index(after: equals)...])))
    }
    for name in ["status", "health", "pick", "limit"] {
        if let value = arguments.value(name) { query.append((name, value)) }
    }
    let service = arguments.positionals[0]
    let path = Requests.path("/discover", service: service, query: query)
    let reply: RegistryConnection.Reply
    switch context.call(.get, path) {
    case .failure(let failure): return context.fail(failure.message, failure.code)
    case .success(let answer): reply = answer
    }
    let code = context.finish(reply, notFound: "no service '\(service)' in the registry") { instanceTable($0.json) }
    // An empty table: say whether the same filters with any status would have shown some.
    let asked = arguments.value("status")?.uppercased() ?? "UP"
    if code == ExitCode.ok, !context.json, asked != "ANY", case .array(let shown)? = reply.json?[member: "instances"],
       shown.isEmpty,
       case .success(let all) = context.call(.get, Requests.path("/discover", service: service,
                                                                 query: query.filter { $0.name != "status" && $0.name != "health" } + [("status", "any")])),
       case .array(let every)? = all.json?[member: "instances"], !every.isEmpty {
        let word = every.count == 1 ? "instance is" : "instances are"
        // Listed by default: UP, and no check failing.
        let wanted = arguments.value("health").map { "\(asked) with health \($0)" } ?? "\(asked) with passing checks"
        printError("registryctl: \(every.count) \(word) registered under '\(service)' but not \(wanted), so hidden; --status any shows them")
    }
    return code
}

func instanceTable(_ json: JSONValue?) -> String {
    var table = Table(header: ["ID", "ADDRESS", "STATUS", "WEIGHT", "ZONE", "TAGS", "UPTIME"])
    guard case .array(let instances)? = json?[member: "instances"] else { return "" }
    for instance in instances {
        table.rows.append([
            text(instance[member: "id"]), text(instance[member: "address"]), text(instance[member: "status"]),
            text(instance[member: "weight"]), text(instance[member: "zone"]), list(instance[member: "tags"]),
            text(instance[member: "uptime_seconds"]) + "s",
        ])
    }
    return table.text
}

func services(_ context: Context, _ words: ArraySlice<String>) throws(Arguments.Problem) -> Int32 {
    let arguments = try Arguments(words, valued: [])
    try arguments.expectPositionals(0, usage: "registryctl services")
    return context.perform(.get, "/services") { serviceTable($0.json) }
}

func serviceTable(_ json: JSONValue?) -> String {
    var table = Table(header: ["SERVICE", "INSTANCES", "UP", "TAGS"])
    guard case .object(let services)? = json?[member: "services"] else { return "" }
    for service in services {
        table.rows.append([service.name, text(service.value[member: "total_instances"]),
                           text(service.value[member: "instances_by_status"]?[member: "UP"] ?? .number(0)),
                           list(service.value[member: "tags"])])
    }
    return table.text
}

func health(_ context: Context, _ words: ArraySlice<String>) throws(Arguments.Problem) -> Int32 {
    let arguments = try Arguments(words, valued: [])
    try arguments.expectPositionals(0, usage: "registryctl health")
    return context.perform(.get, "/health") {
        "\(text($0.json?[member: "status"])) (\(context.connection.url), \(text($0.json?[member: "timestamp"])))"
    }
}

/// Follows `/watch[/SERVICE]` and prints each change as it comes, until the stream ends.
func watch(_ context: Context, _ words: ArraySlice<String>) throws(Arguments.Problem) -> Int32 {
    let arguments = try Arguments(words, valued: ["tag", "zone", "status"])
    guard arguments.positionals.count <= 1 else { throw Arguments.Problem(message: "usage: registryctl watch [SERVICE]") }
    let service = arguments.positionals.first
    var query: [(name: String, value: String)] = arguments.values("tag").map { ("tag", $0) }
    if let zone = arguments.value("zone") { query.append(("zone", zone)) }
    // Every instance by default, whatever its status, so that the counts are those that
    // `watch` (all services) and `services` show; --status UP narrows it as discover does.
    query.append(("status", arguments.value("status") ?? "any"))
    let path = Requests.path("/watch", service: service, query: service == nil ? [] : query)
    var parser = EventStreamParser()
    let reply: RegistryConnection.Reply
    do {
        reply = try context.connection.follow(path) { bytes in
            for event in parser.feed(bytes) {
                if context.json {
                    context.out(event.data)
                } else {
                    context.out(describe(event, service: service))
                }
            }
        }
    } catch {
        return context.fail(error.message, ExitCode.unreachable)
    }
    if reply.status != 200 {
        return context.finish(reply) { _ in nil }
    }
    return context.fail("the registry ended the stream (it is shutting down?)", ExitCode.unreachable)
}

private func describe(_ event: EventStreamParser.Event, service: String?) -> String {
    let json = try? JSONParser.parse(Array(event.data.utf8))
    let head = "\(timestamp()) index=\(event.id ?? "?")"
    if let service {
        guard case .array(let instances)? = json?[member: "instances"] else { return "\(head) \(event.data)" }
        var byStatus: [String: Int] = [:]
        for instance in instances { byStatus[text(instance[member: "status"]), default: 0] += 1 }
        let addresses = instances.map { text($0[member: "address"]) }.joined(separator: " ")
        return "\(head) \(service): \(counted(instances.count, byStatus))" + (addresses.isEmpty ? "" : " " + addresses)
    }
    guard case .object(let services)? = json?[member: "services"] else { return "\(head) \(event.data)" }
    let listing = services.map { entry -> String in
        var byStatus: [String: Int] = [:]
        if case .object(let counts)? = entry.value[member: "instances_by_status"] {
            for count in counts { byStatus[count.name] = Int(text(count.value)) ?? 0 }
        }
        return "\(entry.name) \(counted(Int(text(entry.value[member: "total_instances"])) ?? 0, byStatus))"
    }.joined(separator: ", ")
    return "\(head) \(services.count) service\(services.count == 1 ? "" : "s")" + (listing.isEmpty ? "" : ": " + listing)
}

/// "2 instances (1 UP, 1 OUT_OF_SERVICE)": the same words for one service and for all.
private func counted(_ total: Int, _ byStatus: [String: Int]) -> String {
    let order = InstanceStatus.allCases.map(\.rawValue)
    let counts = byStatus.filter { $0.value > 0 }.sorted { (order.firstIndex(of: $0.key) ?? 9) < (order.firstIndex(of: $1.key) ?? 9) }
        .map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    return "\(total) instance\(total == 1 ? "" : "s")" + (counts.isEmpty ? "" : " (\(counts))")
}

/// `event:`/`data:`/`id:` lines up to a blank line make an event; `:` lines are comments.
struct EventStreamParser {
    struct Event {
        var id: String?
        var name: String?
        var data: String
    }

    private var pending: [UInt8] = []
    private var current = Event(id: nil, name: nil, data: "")
    private var hasData = false

    mutating func feed(_ bytes: [UInt8]) -> [Event] {
        pending += bytes
        var events: [Event] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            var line = String(decoding: pending[..<newline], as: UTF8.self)
            pending.removeSubrange(...newline)
            if line.hasSuffix("\r") { line.removeLast() }
            if line.isEmpty {
                if hasData { events.append(current) }
                current = Event(id: nil, name: nil, data: "")
                hasData = false
            } else if line.hasPrefix(":") {
                continue
            } else if line.hasPrefix("data:") {
                let value = line.dropFirst(5).drop { $0 == " " }
                current.data += hasData ? "\n" + value : String(value)
                hasData = true
            } else if line.hasPrefix("id:") {
                current.id = String(line.dropFirst(3).drop { $0 == " " })
            } else if line.hasPrefix("event:") {
                current.name = String(line.dropFirst(6).drop { $0 == " " })
            }
        }
        return events
    }
}

func text(_ value: JSONValue?) -> String {
    switch value {
    case .string(let text)?: return text
    case .number(let number)?: return number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    case .bool(let flag)?: return flag ? "true" : "false"
    case .null?, nil: return "-"
    default: return "…"
    }
}

func list(_ value: JSONValue?) -> String {
    guard case .array(let items)? = value, !items.isEmpty else { return "-" }
    return items.map { text($0) }.joined(separator: ",")
}

func timestamp() -> String {
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    func pad(_ value: Int32) -> String { value < 10 ? "0\(value)" : String(value) }
    return "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec))Z"
}
