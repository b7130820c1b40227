#if canImport(Glibc)
import Glibc
#endif
import Access
import HTTPParsing
import JSON
import Registry
import RegistryWire

/// The subset of Consul's HTTP API that Consul's clients (python-consul, py-consul, the Go
/// client in Prometheus's `consul_sd_configs`) use, over the same registry as the native API:
/// one set of instances, seen through both. The registry is one Consul agent and its node
/// (`--consul-node`, `--consul-datacenter`); every instance is a service instance on it.
///
/// - An instance registered natively appears with `Address` and `Port` from its address
///   (`InstanceEndpoint`: a URL's host and port, the scheme's default port without one; the
///   whole string and port 0 when it is neither a URL nor host:port).
/// - One registered here becomes `http://Address:Port` (the scheme from its `scheme`
///   metadata key), `Address` alone without a port, and the client's address without
///   `Address`. It has no heartbeat timeout: it stays until deregistered, or until a check has
///   been critical for its `DeregisterCriticalServiceAfter`.
/// - Consul names instances and checks globally; `ConsulNames` finds them, and an id two
///   services hold is answered as an unknown one.
/// - A native status other than UP is a critical check of Consul's view: `OUT_OF_SERVICE` is
///   Consul's maintenance mode (`_service_maintenance:ID`, which `maintenance` sets), `DOWN`
///   and `STARTING` a `_registry_status:ID` check.
///
/// Every answer carries `X-Consul-Index` (the registry's change index, or the service's:
/// never 0), `X-Consul-KnownLeader` and `X-Consul-LastContact`; blocking queries (`index` and
/// `wait`) are held by the `WatchHub` like native long-polls. Errors are plain text with the
/// codes Consul uses.
final class ConsulAPI {
    struct Settings {
        var datacenter = "dc1"
        var nodeName = "service-registry"
        /// The node's address in answers (`Node.Address`): the listening address, or
        /// 127.0.0.1 when it listens on every address.
        var nodeAddress = "127.0.0.1"
        /// `host:port` of this registry's listener (`/v1/status/leader` of a single registry).
        var advertised = "127.0.0.1:5001"
        /// The longest a blocking query is held (`--max-wait`; Consul's own cap is 10 minutes).
        var maximumWait: Duration = .seconds(600)
    }

    let service: RegistryService
    let native: NativeAPI
    let names: ConsulNames
    var settings: Settings
    /// The node's id, a UUID made from its name: the same on every start.
    let nodeID: String
    /// Why maintenance was enabled, per instance (soft state: after a restart the default
    /// note is shown).
    var maintenanceReasons: [ConsulNames.Owner: String] = [:] {
        // A reason is part of the answers: a new one outdates what was rendered.
        didSet {
            renderings.removeAll()
            renderingBytes = 0
        }
    }
    /// Service reads as last rendered, by what they depend on, with the service's index and
    /// its checks' results generation then: Prometheus and the clients' blocking loops read
    /// the same answers again and again.
    var renderings: [RenderingKey: (index: UInt64, generation: UInt64, body: [UInt8])] = [:]
    var renderingBytes = 0

    var checker: HealthChecker? { native.checker }
    var cluster: Cluster? { native.cluster }

    init(service: RegistryService, native: NativeAPI, settings: Settings) {
        self.service = service
        self.native = native
        self.settings = settings
        names = ConsulNames(service: service)
        nodeID = Self.uuid(from: settings.nodeName)
        // A maintenance reason goes with its instance.
        service.onChange { [unowned self, unowned service] changed in
            guard !maintenanceReasons.isEmpty else { return }
            let registry = service.snapshot
            for key in maintenanceReasons.keys where changed.contains(key.service) && registry.instance(service: key.service, id: key.id) == nil {
                maintenanceReasons[key] = nil
            }
        }
    }

    func routes() -> [Route] {
        let restyle: (Response) -> Response = { [unowned self] in restyled($0) }
        func route(_ template: String, _ methods: [HTTPMethod], _ permission: Route.Permission,
                   _ handler: @escaping (ConsulAPI, RouteRequest) -> Handling) -> Route {
            Route(template: template, methods: methods, frontEnd: .consul, permission: permission, restyle: restyle) { [self] in
                handler(self, $0)
            }
        }
        let reads: [HTTPMethod] = [.get, .head]
        return [
            route("/v1/agent/service/register", [.put], .write) { $0.register($1) },
            route("/v1/agent/service/deregister/{id}", [.put], .write) { $0.deregister($1) },
            route("/v1/agent/service/maintenance/{id}", [.put], .write) { $0.maintenance($1) },
            route("/v1/agent/check/pass/{id}", [.put], .write) { $0.report($1, .passing) },
            route("/v1/agent/check/warn/{id}", [.put], .write) { $0.report($1, .warning) },
            route("/v1/agent/check/fail/{id}", [.put], .write) { $0.report($1, .critical) },
            route("/v1/agent/check/update/{id}", [.put], .write) { $0.report($1, nil) },
            route("/v1/agent/services", reads, .read) { $0.agentServices($1) },
            route("/v1/agent/checks", reads, .read) { $0.agentChecks($1) },
            route("/v1/agent/self", reads, .read) { $0.agentSelf($1) },
            route("/v1/status/leader", reads, .read) { $0.statusLeader($1) },
            route("/v1/status/peers", reads, .read) { $0.statusPeers($1) },
            route("/v1/catalog/datacenters", reads, .read) { $0.catalogDatacenters($1) },
            route("/v1/catalog/nodes", reads, .read) { $0.catalogNodes($1) },
            route("/v1/catalog/services", reads, .read) { $0.catalogServices($1) },
            route("/v1/catalog/service/{name}", reads, .read) { $0.serviceRead($1, .catalog) },
            route("/v1/health/service/{name}", reads, .read) { $0.serviceRead($1, .health) },
            route("/v1/health/checks/{name}", reads, .read) { $0.serviceRead($1, .checks) },
            Route(template: "/v1/{path}", methods: HTTPMethod.allCases.filter { $0 != .connect }, frontEnd: .consul, permission: .none,
                  isFallback: true, restyle: restyle) { [self] request in
                // Consul's own answer for a path it does not serve.
                .respond(text(404, "Invalid URL path: not a recognized HTTP API endpoint\n"))
            },
        ]
    }

    // MARK: Answers

    /// The headers every answer carries.
    func headers(index: UInt64, now: Instant) -> [(name: String, value: String)] {
        var knownLeader = true
        var lastContact = "0"
        if let cluster {
            knownLeader = cluster.leadership.knowsLeader
            // Consul's Go client parses this as an unsigned number: never "-1".
            if let milliseconds = cluster.store.lastContactMilliseconds(now: now) { lastContact = String(max(0, milliseconds)) }
        }
        return [("X-Consul-Index", String(max(index, 1))), ("X-Consul-KnownLeader", knownLeader ? "true" : "false"),
                ("X-Consul-LastContact", lastContact)]
    }

    func json(_ body: [UInt8], index: UInt64, now: Instant) -> Response {
        var response = Response(status: 200, body: body)
        response.extraHeaders = headers(index: index, now: now)
        return response
    }

    /// A plain-text answer, as Consul sends its errors.
    func text(_ status: Int32, _ message: String, now: Instant = Clock.monotonicNow()) -> Response {
        var response = Response(status: status, body: Array(message.utf8))
        response.contentType = "text/plain; charset=utf-8"
        response.extraHeaders = headers(index: service.changeIndex, now: now)
        if status >= 400 { response.message = message }
        return response
    }

    /// A write's success: 200 with no body, as Consul's agent answers.
    func done(now: Instant) -> Handling {
        .respondWhenCommitted(text(200, "", now: now))
    }

    /// A native answer made outside a handler (405, a denial, a failed commit, a refused
    /// long-poll) in Consul's form: its message as plain text, 401 as Consul's 403.
    func restyled(_ response: Response) -> Response {
        var message = response.message ?? String(decoding: response.body, as: UTF8.self)
        var status = response.status
        if status == 401 || status == 403 {
            status = 403
            message = "Permission denied: " + message
        } else if status == 503 && response.retryAfter == nil {
            // A failed commit: Consul answers its internal errors 500.
            status = 500
        }
        if status == 405, let method = response.message?.split(separator: " ").dropFirst().first {
            message = "method \(method) not allowed"
        }
        var styled = text(status, message)
        styled.allow = response.allow
        styled.retryAfter = response.retryAfter
        styled.denial = response.denial
        return styled
    }

    /// `?token=`, Consul's other way of sending a token, for the front end's caller lookup:
    /// only on `/v1/` paths.
    static func queryToken(path: UnsafeBufferPointer<UInt8>, query: UnsafeBufferPointer<UInt8>?) -> [UInt8]? {
        guard let query, path.starts(with: "/v1/".utf8) else { return nil }
        for pair in query.split(separator: UInt8(ascii: "&")) where pair.starts(with: "token=".utf8) {
            let value = Array(pair.dropFirst(6))
            return try? value.withUnsafeBufferPointer { PercentDecoding.decode($0) }.get().utf8.map { $0 }
        }
        return nil
    }

    /// An answer instead of the value asked for (a 400), as an error for `Result`; made and
    /// used on the loop only.
    struct Refusal: Error, @unchecked Sendable {
        let response: Response
        init(_ response: Response) { self.response = response }
    }

    /// The query, or Consul's 400 for it.
    func query(_ request: RouteRequest) -> Result<ConsulQuery, Refusal> {
        switch ConsulQuery.parse(request.query) {
        case .success(let parsed):
            if let datacenter = parsed.datacenter, datacenter != settings.datacenter {
                return .failure(Refusal(text(500, "No path to datacenter", now: request.now)))
            }
            return .success(parsed)
        case .failure(let problem):
            return .failure(Refusal(text(400, problem.message, now: request.now)))
        }
    }

    /// The query and the path's parameter (`what` names it in a 400), or the refusal.
    func inputs(_ request: RouteRequest, parameter what: String) -> Result<(ConsulQuery, String), Refusal> {
        query(request).flatMap { parsed in parameter(request, what: what).map { (parsed, $0) } }
    }

    /// The path's parameter, percent-decoded, or a 400.
    func parameter(_ request: RouteRequest, what: String) -> Result<String, Refusal> {
        switch PercentDecoding.decode(request.parameter) {
        case .success(let value) where !value.isEmpty: return .success(value)
        case .success: return .failure(Refusal(text(400, "Missing \(what)", now: request.now)))
        case .failure(let problem): return .failure(Refusal(text(400, problem.message, now: request.now)))
        }
    }

    /// Answers now, or holds a blocking query (`index` at or past the current one) until
    /// what it reads changes or its wait passes.
    func answer(_ query: ConsulQuery, service name: String?, now: Instant, index: @escaping (Instant) -> UInt64,
                render: @escaping (Instant, Int64) -> Response) -> Handling {
        if let wanted = query.index, wanted > 0, wanted >= index(now) {
            let wait = query.effectiveWait(cap: settings.maximumWait)
            if wait > .zero {
                return .park(.external(ExternalRead(serviceName: name, index: index, answer: render)), wait: wait)
            }
        }
        return .respond(render(now, Clock.wallNow()))
    }

    /// This machine's host name, as Consul names its node by default (`registry` when the
    /// name is not usable as one: a node name is a token here).
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "registry" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Violation.checkZone(name) == nil ? name : "registry"
    }

    /// A name-based UUID (8-4-4-4-12 hex digits) from two FNV-1a hashes of `name`.
    static func uuid(from name: String) -> String {
        func fnv(_ seed: UInt64) -> UInt64 {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
            for byte in name.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01b3
            }
            return hash
        }
        let digits = (String(fnv(0), radix: 16).leftPadded(16) + String(fnv(0x9e37_79b9_7f4a_7c15), radix: 16).leftPadded(16))
        let characters = Array(digits)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
    }
}

private extension String {
    func leftPadded(_ length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
