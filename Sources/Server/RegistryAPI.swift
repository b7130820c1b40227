import Registry

/// The HTTP API over the registry: routes a decoded request, calls the core, and renders
/// the outcome as a `Response`. It does no I/O and reads no clock, so tests drive it with
/// no sockets; `HTTPServer` feeds it from evhttp's callbacks on the one event loop.
final class RegistryAPI {
    private(set) var registry: Registry
    private let logger: Logger

    /// Discover bodies by service, rebuilt only when the service changes or when the
    /// uptime tick moves (uptimes are reported in hundredths, so a body stays exact for
    /// one 10 ms tick). Under load this turns nearly every discover into one copy.
    private var discoverCache: [String: CachedBody] = [:]
    private var servicesCache: CachedBody?

    private struct CachedBody {
        var changeIndex: UInt64
        var tick: Int64
        var body: [UInt8]
    }

    private static let tickNanoseconds: Int64 = 10_000_000
    /// The answer to nearly every heartbeat, built once: the hot path allocates nothing for it.
    private static let heartbeatRenewedBody = Response.status(200, "ok", "Heartbeat updated").body

    init(registry: Registry, logger: Logger) {
        self.registry = registry
        self.logger = logger
    }

    // MARK: Routing

    /// Answers one request. `path` is the raw (still percent-encoded) path of the URI,
    /// without the query; `body` is the whole request body.
    func handle(method: HTTPMethod, path: UnsafeBufferPointer<UInt8>, body: UnsafeBufferPointer<UInt8>,
                now: Instant, wallClock: Int64) -> Response {
        if path.starts(with: Route.discoverPrefix) {
            guard method == .get || method == .head else { return methodNotAllowed(method, path, allow: "GET, HEAD") }
            return discover(encodedName: UnsafeBufferPointer(rebasing: path[Route.discoverPrefix.count...]), now: now)
        }
        switch Route(path) {
        case .register?, .heartbeat?, .deregister?:
            guard method == .post else { return methodNotAllowed(method, path, allow: "POST") }
            return write(Route(path)!, body: body, now: now)
        case .services?:
            guard method == .get || method == .head else { return methodNotAllowed(method, path, allow: "GET, HEAD") }
            return services(now: now)
        case .health?:
            guard method == .get || method == .head else { return methodNotAllowed(method, path, allow: "GET, HEAD") }
            return health(wallClock: wallClock)
        case nil:
            return .error(404, "no such endpoint: \(method.name) \(String(decoding: path, as: UTF8.self)); "
                + "the API is POST /register, /heartbeat, /deregister and GET /discover/{service}, /services, /health")
        }
    }

    /// Convenience for tests and tools: the same with Swift strings.
    func handle(method: HTTPMethod, path: String, body: String = "", now: Instant, wallClock: Int64 = 0) -> Response {
        var path = path
        var body = body
        return path.withUTF8 { pathBytes in
            body.withUTF8 { bodyBytes in
                handle(method: method, path: pathBytes, body: bodyBytes, now: now, wallClock: wallClock)
            }
        }
    }

    private func methodNotAllowed(_ method: HTTPMethod, _ path: UnsafeBufferPointer<UInt8>, allow: StaticString) -> Response {
        .error(405, "method \(method.name) is not allowed on \(String(decoding: path, as: UTF8.self)); use \(allow)", allow: allow)
    }

    private enum Route {
        case register, heartbeat, deregister, services, health

        static let discoverPrefix = Array("/discover/".utf8)

        init?(_ path: UnsafeBufferPointer<UInt8>) {
            switch String(decoding: path, as: UTF8.self) {
            case "/register": self = .register
            case "/heartbeat": self = .heartbeat
            case "/deregister": self = .deregister
            case "/services": self = .services
            case "/health": self = .health
            default: return nil
            }
        }
    }

    // MARK: Writes

    private func write(_ route: Route, body: UnsafeBufferPointer<UInt8>, now: Instant) -> Response {
        let service: String
        let address: String
        switch InstanceRequest.decode(body) {
        case .success(let request):
            service = request.service
            address = request.address
        case .failure(let problem):
            return .error(400, problem.message)
        }
        switch route {
        case .register:
            switch registry.register(service: service, address: address, now: now) {
            case .registered:
                logger.info("registered service=\(logValue(service)) address=\(logValue(address))")
                return .status(201, "registered", "Service \(service) registered at \(address)")
            case .updated:
                logger.debug("re-registered service=\(logValue(service)) address=\(logValue(address))")
                return .status(200, "updated", "Service \(service) at \(address) heartbeat updated")
            case .invalid(let violation):
                return .error(400, violation.message)
            }
        case .heartbeat:
            switch registry.heartbeat(service: service, address: address, now: now) {
            case .renewed:
                return Response(status: 200, body: Self.heartbeatRenewedBody)
            case .unknownService:
                return .status(404, "not_found", "Service \(service) is not registered; register it first")
            case .unknownInstance:
                return .status(404, "not_found", "Service \(service) has no instance at \(address); register it first")
            case .invalid(let violation):
                return .error(400, violation.message)
            }
        case .deregister:
            switch registry.deregister(service: service, address: address, now: now) {
            case .deregistered:
                logger.info("deregistered service=\(logValue(service)) address=\(logValue(address))")
                return .status(200, "deregistered", "Service \(service) at \(address) deregistered")
            case .unknownService:
                return .status(404, "not_found", "Service \(service) is not registered")
            case .unknownInstance:
                return .status(404, "not_found", "Service \(service) has no instance at \(address)")
            case .invalid(let violation):
                return .error(400, violation.message)
            }
        case .services, .health:
            preconditionFailure("\(route) is not a write")
        }
    }

    // MARK: Reads

    private func discover(encodedName: UnsafeBufferPointer<UInt8>, now: Instant) -> Response {
        let name: String
        switch PercentDecoding.decode(encodedName) {
        case .success(let decoded): name = decoded
        case .failure(let problem): return .error(400, problem.message)
        }
        if let violation = NameViolation.checkServiceName(name) {
            return .error(400, violation.message)
        }
        guard let changeIndex = registry.serviceChangeIndex(name, now: now) else {
            discoverCache[name] = nil
            var json = JSONWriter()
            json.raw("{\"service\":")
            json.string(name)
            json.raw(",\"instances\":[],\"message\":\"Service not found\"}")
            return Response(status: 404, body: json.bytes)
        }
        let tick = now.nanoseconds / Self.tickNanoseconds
        if let cached = discoverCache[name], cached.changeIndex == changeIndex, cached.tick == tick {
            return Response(status: 200, body: cached.body)
        }
        let body = renderDiscover(name, tick: tick)
        if discoverCache.count > 2 * registry.serviceCount + 1024 { pruneDiscoverCache() }
        discoverCache[name] = CachedBody(changeIndex: changeIndex, tick: tick, body: body)
        return Response(status: 200, body: body)
    }

    private func renderDiscover(_ name: String, tick: Int64) -> [UInt8] {
        let instances = registry.instances(ofService: name)
        let tickStart = tick * Self.tickNanoseconds
        var json = JSONWriter(capacity: 64 + instances.count * 64)
        json.raw("{\"service\":")
        json.string(name)
        json.raw(",\"instances\":[")
        for (position, instance) in instances.enumerated() {
            if position > 0 { json.raw(",") }
            json.raw("{\"address\":")
            json.string(instance.address)
            json.raw(",\"uptime_seconds\":")
            json.hundredths((tickStart - instance.registeredAt.nanoseconds) / Self.tickNanoseconds)
            json.raw("}")
        }
        json.raw("],\"count\":")
        json.integer(instances.count)
        json.raw("}")
        return json.bytes
    }

    /// Drops cached bodies of services that no longer exist (and were not asked for since).
    private func pruneDiscoverCache() {
        discoverCache = discoverCache.filter { registry.contains(service: $0.key) }
    }

    private func services(now: Instant) -> Response {
        // The listing is cached by the global change index, but only while nothing can be
        // due: otherwise due instances must be left out, which the core does fresh.
        let nothingDue = registry.nextDeadline.map { now < $0 } ?? true
        if nothingDue, let cached = servicesCache, cached.changeIndex == registry.changeIndex {
            return Response(status: 200, body: cached.body)
        }
        let summaries = registry.serviceSummaries(now: now)
        var json = JSONWriter(capacity: 32 + summaries.count * 64)
        json.raw("{\"services\":{")
        for (position, summary) in summaries.enumerated() {
            if position > 0 { json.raw(",") }
            json.string(summary.name)
            json.raw(":{\"total_instances\":")
            json.integer(summary.instanceCount)
            json.raw(",\"active_instances\":")
            json.integer(summary.instanceCount)
            json.raw("}")
        }
        json.raw("},\"total_services\":")
        json.integer(summaries.count)
        json.raw("}")
        if nothingDue { servicesCache = CachedBody(changeIndex: registry.changeIndex, tick: 0, body: json.bytes) }
        return Response(status: 200, body: json.bytes)
    }

    private func health(wallClock: Int64) -> Response {
        var json = JSONWriter()
        json.raw("{\"status\":\"healthy\",\"timestamp\":")
        json.string(Clock.iso8601(unixNanoseconds: wallClock))
        json.raw("}")
        return Response(status: 200, body: json.bytes)
    }

    // MARK: Expiry

    /// One bounded round of active expiry; see `Registry.expireDue(now:limit:)`.
    func expireDue(now: Instant, limit: Int) -> ExpiryProgress {
        registry.expireDue(now: now, limit: limit)
    }

    /// Logs the instances expired since the last call, by any path (timer or lazy).
    func logExpired(now: Instant) {
        for expired in registry.takeExpired() {
            let silenceMilliseconds = now.duration(since: expired.lastHeartbeat).wholeNanoseconds / 1_000_000
            logger.info("expired service=\(logValue(expired.service)) address=\(logValue(expired.address)) "
                + "last_heartbeat_ms_ago=\(silenceMilliseconds)")
        }
    }
}
