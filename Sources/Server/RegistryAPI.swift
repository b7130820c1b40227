import RegistryWire
#if canImport(Glibc)
import Glibc
#endif
import Registry
import JSON

/// The HTTP API over the registry: routes a decoded request, calls the core, and renders
/// the outcome. It does no I/O and reads no clock, so tests drive it with no sockets;
/// `HTTPServer` feeds it from evhttp's callbacks on the one event loop, and `WatchHub`
/// asks it for the current state when a parked request or a stream must be answered.
final class RegistryAPI {
    private(set) var registry: Registry
    private let logger: Logger
    /// Source of `pick=random|weighted`; injectable so that tests can be exact.
    private var random: RandomSource

    /// Per service, what its discover answers are made of (see `ServiceView`).
    private var views: [String: ServiceView] = [:]
    /// The `/services` answer, kept up to date change by change.
    private let listing = ServicesListing()
    /// Services changed since the server last asked (see `takeChangedServices`).
    private var changedServices: [String] = []

    /// Set on the first stop signal: `/ready` answers 503 from then on.
    var isDraining = false
    /// Renders `/metrics`; the server sets it, since most of what it reports lives there.
    var metricsExposition: (() -> [UInt8])?
    /// Counted for `/metrics`.
    private(set) var registrations: UInt64 = 0
    private(set) var deregistrations: UInt64 = 0
    private(set) var expirations: UInt64 = 0

    private static let tickNanoseconds = ServiceView.tickNanoseconds
    /// The answer to nearly every heartbeat, built once: the hot path allocates nothing for it.
    private static let heartbeatRenewedBody = Response.status(200, "ok", "Heartbeat updated").body

    /// The longest a blocking query is held (`--max-wait`); longer waits are cut to it.
    let maximumWait: Duration

    init(registry: Registry, logger: Logger, random: RandomSource = RandomSource(SystemRandomNumberGenerator()),
         maximumWait: Duration = .seconds(600)) {
        self.registry = registry
        self.maximumWait = maximumWait
        self.logger = logger
        self.random = random
    }

    /// Every (method, path template) the router serves; the OpenAPI document must list
    /// exactly these.
    static let routes: [(method: String, path: String)] = [
        ("POST", "/register"), ("POST", "/heartbeat"), ("POST", "/deregister"), ("POST", "/status"),
        ("GET", "/discover/{service}"), ("HEAD", "/discover/{service}"),
        ("GET", "/services"), ("HEAD", "/services"),
        ("GET", "/health"), ("HEAD", "/health"),
        ("GET", "/ready"), ("HEAD", "/ready"),
        ("GET", "/metrics"), ("HEAD", "/metrics"),
        ("GET", "/watch/{service}"), ("HEAD", "/watch/{service}"),
        ("GET", "/watch"), ("HEAD", "/watch"),
    ]

    // MARK: Routing

    /// Decides what to do with one request. `path` is the raw (still percent-encoded) path
    /// of the URI, `route` what `routeLabel(_:)` made of it (the server needs it for its
    /// metrics too, so it is worked out once), `query` the raw query string, `body` the whole
    /// request body.
    func handle(method: HTTPMethod, path: UnsafeBufferPointer<UInt8>, route: RouteLabel, query: UnsafeBufferPointer<UInt8>?,
                body: UnsafeBufferPointer<UInt8>, now: Instant, wallClock: Int64) -> Handling {
        switch route {
        case .discover, .watch:
            guard method == .get || method == .head else { return .respond(methodNotAllowed(method, path, allow: "GET, HEAD")) }
            let prefix = route == .discover ? Self.discoverPrefix.count : Self.watchPrefix.count
            return read(encodedName: UnsafeBufferPointer(rebasing: path[prefix...]), query: query, stream: route == .watch,
                        now: now, wallClock: wallClock)
        case .other:
            return .respond(.error(404, "no such endpoint: \(method.name) \(Self.shown(path)); "
                + "the API is POST /register, /heartbeat, /deregister, /status and GET /discover/{service}, "
                + "/services, /watch, /watch/{service}, /health, /ready, /metrics"))
        case .register, .heartbeat, .deregister, .status:
            guard method == .post else { return .respond(methodNotAllowed(method, path, allow: "POST")) }
            return .respond(write(route, body: body, now: now))
        case .services, .watchAll:
            guard method == .get || method == .head else { return .respond(methodNotAllowed(method, path, allow: "GET, HEAD")) }
            let parsed: ReadQuery
            switch ReadQuery.parse(query, scope: .services) {
            case .success(let value): parsed = value
            case .failure(let problem): return .respond(.error(400, problem.message))
            }
            if route == .watchAll { return .stream(.services) }
            if let index = parsed.index, index >= registry.changeIndex {
                return .park(.services, wait: min(parsed.wait ?? ReadQuery.defaultWait, maximumWait))
            }
            return .respond(services(now: now))
        case .health:
            guard method == .get || method == .head else { return .respond(methodNotAllowed(method, path, allow: "GET, HEAD")) }
            return .respond(health(wallClock: wallClock))
        case .ready:
            guard method == .get || method == .head else { return .respond(methodNotAllowed(method, path, allow: "GET, HEAD")) }
            return .respond(isDraining
                ? .status(503, "draining", "the registry is shutting down; send requests to another instance")
                : .status(200, "ready", "serving"))
        case .metrics:
            guard method == .get || method == .head else { return .respond(methodNotAllowed(method, path, allow: "GET, HEAD")) }
            var response = Response(status: 200, body: metricsExposition?() ?? [])
            response.contentType = "text/plain; version=0.0.4; charset=utf-8"
            return .respond(response)
        }
    }

    /// The methods a path serves, for the `Allow` header of a 405 given before routing (the
    /// transport refuses methods evhttp does not know); a path no route serves lists the
    /// methods the API uses anywhere.
    static func allowedMethods(_ path: UnsafeBufferPointer<UInt8>) -> StaticString {
        switch routeLabel(path) {
        case .register, .heartbeat, .deregister, .status: return "POST"
        case .discover, .watch, .services, .health, .ready, .metrics, .watchAll: return "GET, HEAD"
        case .other: return "GET, HEAD, POST"
        }
    }

    /// Convenience for tests and tools: the same with Swift strings; a query follows `?`.
    func handle(method: HTTPMethod, path target: String, body: String = "", now: Instant, wallClock: Int64 = 0) -> Handling {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var path = String(parts[0])
        var query = parts.count > 1 ? String(parts[1]) : ""
        var body = body
        return path.withUTF8 { pathBytes in
            query.withUTF8 { queryBytes in
                body.withUTF8 { bodyBytes in
                    handle(method: method, path: pathBytes, route: Self.routeLabel(pathBytes), query: parts.count > 1 ? queryBytes : nil,
                           body: bodyBytes, now: now, wallClock: wallClock)
                }
            }
        }
    }

    private func methodNotAllowed(_ method: HTTPMethod, _ path: UnsafeBufferPointer<UInt8>, allow: StaticString) -> Response {
        .error(405, "method \(method.name) is not allowed on \(Self.shown(path)); use \(allow)", allow: allow)
    }

    /// A path as an error message quotes it: at most 100 bytes (a client may send 8 KB), and
    /// never a broken UTF-8 sequence.
    static func shown(_ path: UnsafeBufferPointer<UInt8>) -> String {
        let limit = 100
        guard path.count > limit else { return String(decoding: path, as: UTF8.self) }
        var end = limit
        // Back off to a character boundary: continuation bytes are 10xxxxxx.
        while end > 0 && path[end] & 0xC0 == 0x80 { end -= 1 }
        return String(decoding: UnsafeBufferPointer(rebasing: path[..<end]), as: UTF8.self) + "… (\(path.count) bytes)"
    }

    private static let discoverPrefix = Array("/discover/".utf8)
    private static let watchPrefix = Array("/watch/".utf8)

    // MARK: Writes

    private func write(_ route: RouteLabel, body: UnsafeBufferPointer<UInt8>, now: Instant) -> Response {
        if route == .register {
            let request: RegistrationRequest
            switch RegistrationRequest.decode(body) {
            case .success(let decoded): request = decoded
            case .failure(let problem): return .error(400, problem.message)
            }
            let service = request.service
            let address = request.address
            switch registry.register(service: service, id: request.id, address: address, fields: request.fields, now: now) {
            case .registered:
                registrations += 1
                logger.info("registered", ["service": service, "id": request.id ?? address, "address": address])
                return .status(201, "registered", "Service \(service) registered at \(address)")
            case .updated(let changed):
                if changed { logger.info("updated", ["service": service, "id": request.id ?? address]) }
                return .status(200, "updated", "Service \(service) at \(address) heartbeat updated")
            case .invalid(let violation):
                return .error(400, violation.message)
            }
        }
        let request: InstanceReference
        switch InstanceReference.decode(body, statusRequired: route == .status) {
        case .success(let decoded): request = decoded
        case .failure(let problem): return .error(400, problem.message)
        }
        let service = request.service
        let id = request.name
        let outcome: InstanceOutcome
        switch route {
        case .heartbeat: outcome = registry.heartbeat(service: service, id: id, status: request.status, now: now)
        case .deregister: outcome = registry.deregister(service: service, id: id, now: now)
        default: outcome = registry.setStatus(service: service, id: id, status: request.status ?? .up, now: now)
        }
        switch outcome {
        case .done(let changed):
            switch route {
            case .heartbeat:
                if changed, let status = request.status {
                    logger.info("status", ["service": service, "id": id, "status": status.rawValue])
                }
                return Response(status: 200, body: Self.heartbeatRenewedBody)
            case .deregister:
                deregistrations += 1
                logger.info("deregistered", ["service": service, "id": id])
                return .status(200, "deregistered", "Service \(service) at \(id) deregistered")
            default:
                let status = request.status ?? .up
                if changed { logger.info("status", ["service": service, "id": id, "status": status.rawValue]) }
                return .status(200, "ok", "Status of \(service) at \(id) is now \(status.rawValue)")
            }
        case .unknownService:
            return .status(404, "not_found", route == .heartbeat
                ? "Service \(service) is not registered; register it first" : "Service \(service) is not registered")
        case .unknownInstance:
            return .status(404, "not_found", route == .heartbeat
                ? "Service \(service) has no instance at \(id); register it first" : "Service \(service) has no instance at \(id)")
        case .invalid(let violation):
            return .error(400, violation.message)
        }
    }

    // MARK: Reads

    private func read(encodedName: UnsafeBufferPointer<UInt8>, query rawQuery: UnsafeBufferPointer<UInt8>?, stream: Bool,
                      now: Instant, wallClock: Int64) -> Handling {
        let name: String
        if Self.isPlainServiceName(encodedName) {
            // The common case: nothing to decode and nothing to check beyond the bytes.
            name = String(decoding: encodedName, as: UTF8.self)
        } else {
            switch PercentDecoding.decode(encodedName) {
            case .success(let decoded): name = decoded
            case .failure(let problem): return .respond(.error(400, problem.message))
            }
            if let violation = Violation.checkServiceName(name) {
                return .respond(.error(400, violation.message))
            }
        }
        let query: ReadQuery
        switch ReadQuery.parse(rawQuery, scope: .instances) {
        case .success(let parsed): query = parsed
        case .failure(let problem): return .respond(.error(400, problem.message))
        }
        if stream { return .stream(.service(name, query)) }
        if let index = query.index, index >= (registry.serviceChangeIndex(name, now: now) ?? 0) {
            return .park(.service(name, query), wait: min(query.wait ?? ReadQuery.defaultWait, maximumWait))
        }
        return .respond(discover(name, query: query, now: now, wallClock: wallClock))
    }

    /// True when the raw path segment is already a valid service name (1–253 ASCII letters,
    /// digits, '.', '_', '-'): no percent-encoding to undo and no rule to report.
    private static func isPlainServiceName(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.count <= Violation.maxServiceNameLength else { return false }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        return true
    }

    /// The change index a read of `target` would carry now, without rendering it.
    func currentIndex(_ target: WatchTarget, now: Instant) -> UInt64 {
        switch target {
        case .service(let name, _): return registry.serviceChangeIndex(name, now: now) ?? 0
        case .services: return registry.changeIndex
        }
    }

    /// The current answer for a watch target: what a parked request gets when it wakes,
    /// and the data of each stream event.
    func read(_ target: WatchTarget, now: Instant, wallClock: Int64) -> Response {
        switch target {
        case .service(let name, let query): return discover(name, query: query, now: now, wallClock: wallClock)
        case .services: return services(now: now)
        }
    }

    private func discover(_ name: String, query: ReadQuery, now: Instant, wallClock: Int64) -> Response {
        guard let changeIndex = registry.serviceChangeIndex(name, now: now) else {
            views[name] = nil
            var json = JSONWriter()
            json.raw("{\"service\":")
            json.string(name)
            json.raw(",\"instances\":[],\"message\":\"Service not found\"}")
            return Response(status: 404, body: json.bytes, index: 0)
        }
        let wallOffset = wallClock - now.nanoseconds
        let view: ServiceView
        if let known = views[name] {
            view = known
        } else {
            view = ServiceView(name: name)
            if views.count > 2 * registry.serviceCount + 1024 { views = views.filter { registry.contains(service: $0.key) } }
            views[name] = view
        }
        view.update(from: &registry, changeIndex: changeIndex, now: now, wallOffset: wallOffset)
        view.refresh(from: &registry, tick: now.nanoseconds / Self.tickNanoseconds, now: now, wallOffset: wallOffset)
        if query.isDefaultListing {
            var response = Response(status: 200, body: view.plainParts.first ?? [], index: changeIndex)
            response.segments = Array(view.plainParts.dropFirst())
            return response
        }
        // Filter and pick first, then render only what is listed.
        var chosen = view.entries.indices.filter { matches(view.entries[$0].instance, query) }
        if let pick = query.pick { chosen = order(chosen, by: pick, entries: view.entries, service: name) }
        if let limit = query.limit, chosen.count > limit { chosen.removeLast(chosen.count - limit) }
        return Response(status: 200, body: view.listing(chosen), index: changeIndex)
    }

    private func matches(_ instance: InstanceSnapshot, _ query: ReadQuery) -> Bool {
        if case .only(let status) = query.status, instance.status != status { return false }
        if let zone = query.zone, instance.zone != zone { return false }
        for tag in query.tags where !instance.tags.contains(tag) { return false }
        for wanted in query.metadata where !instance.metadata.contains(where: { $0.key == wanted.key && $0.value == wanted.value }) {
            return false
        }
        return true
    }

    /// Orders the chosen instances for a pick: round-robin starts one further along for
    /// each call on the service; random shuffles; weighted draws without replacement with
    /// probability proportional to weight (Efraimidis–Spirakis keys u^(1/w)).
    private func order(_ chosen: [Int], by pick: ReadQuery.Pick, entries: [ServiceView.Entry], service: String) -> [Int] {
        guard chosen.count > 1 else { return chosen }
        switch pick {
        case .roundRobin:
            let start = Int(registry.nextRoundRobinTicket(service: service) % UInt64(chosen.count))
            return Array(chosen[start...] + chosen[..<start])
        case .random:
            return chosen.shuffled(using: &random)
        case .weighted:
            let keyed = chosen.map { index -> (index: Int, key: Double) in
                let unit = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &random)
                return (index, pow(unit, 1 / Double(entries[index].instance.weight)))
            }
            return keyed.sorted { $0.key > $1.key }.map { $0.index }
        }
    }

    private func services(now: Instant) -> Response {
        pullChanges()
        let parts = listing.answer(registry, now: now)
        var response = Response(status: 200, body: parts.first ?? [], index: registry.changeIndex)
        response.segments = Array(parts.dropFirst())
        return response
    }

    private func health(wallClock: Int64) -> Response {
        var json = JSONWriter()
        json.raw("{\"status\":\"healthy\",\"timestamp\":")
        json.timestamp(unixNanoseconds: wallClock)
        json.raw("}")
        return Response(status: 200, body: json.bytes)
    }

    // MARK: Expiry and changes

    /// One bounded round of active expiry; see `Registry.expireDue(now:limit:)`.
    func expireDue(now: Instant, limit: Int) -> ExpiryProgress {
        registry.expireDue(now: now, limit: limit)
    }

    /// Logs what the registry did on its own since the last call (expiries, protection).
    func logEvents(now: Instant) {
        for event in registry.takeEvents() {
            switch event {
            case .expired(let service, let id, let address, let lastHeartbeat):
                let silence = now.duration(since: lastHeartbeat).wholeNanoseconds / 1_000_000
                expirations += 1
                logger.info("expired", ["service": service, "id": id, "address": address, "last_heartbeat_ms_ago": silence])
            case .protectionStarted(let service, let overdue, let instances):
                logger.warn("expiry_protection_on", [
                    "service": service, "overdue": overdue, "instances": instances,
                    "note": "keeping its overdue instances (marked protected) until their heartbeats return",
                ])
            case .protectionLifted(let service):
                logger.info("expiry_protection_lifted", ["service": service, "note": "heartbeats returned"])
            }
        }
    }

    /// The services whose visible state changed since the last call; see `Registry`.
    func takeChangedServices() -> [String] {
        pullChanges()
        defer { changedServices.removeAll(keepingCapacity: true) }
        return changedServices
    }

    /// Renders the `/services` listing of what is registered now (see `ServicesListing`).
    func prepareListing() {
        listing.prepare(registry)
    }

    /// Applies a bounded number of changes to the `/services` listing; see `ServicesListing`.
    func maintainListing() {
        pullChanges()
        listing.maintain(registry, limit: 1024)
    }

    /// Takes the registry's changed services for the `/services` listing and for the next
    /// `takeChangedServices`, so that a listing made before the server asks is up to date.
    private func pullChanges() {
        let changed = registry.takeChangedServices()
        guard !changed.isEmpty else { return }
        listing.noteChanged(changed)
        changedServices += changed
    }

    var changeIndex: UInt64 { registry.changeIndex }
    var nextDeadline: Instant? { registry.nextDeadline }

    /// The label `/metrics` counts a request under: its route's template, so that service
    /// names never become label values (one series per service would grow without bound).
    static func routeLabel(_ path: UnsafeBufferPointer<UInt8>) -> RouteLabel {
        if path.starts(with: discoverPrefix) { return .discover }
        if path.starts(with: watchPrefix) { return .watch }
        // Every fixed path is at most 15 bytes, so this String needs no allocation.
        switch String(decoding: path, as: UTF8.self) {
        case "/register": return .register
        case "/heartbeat": return .heartbeat
        case "/deregister": return .deregister
        case "/status": return .status
        case "/services": return .services
        case "/health": return .health
        case "/ready": return .ready
        case "/metrics": return .metrics
        case "/watch": return .watchAll
        default: return .other
        }
    }

    /// Instances by status (including any overdue ones not yet removed), for `/metrics`.
    var instanceCountsByStatus: [InstanceStatus: Int] { registry.instanceCountsByStatus }
    var instanceCount: Int { registry.instanceCount }
    var serviceCount: Int { registry.serviceCount }

    // MARK: Durability

    var pendingJournalCount: Int { registry.pendingJournalCount }

    func takeJournal() -> [JournalChange] {
        registry.takeJournal()
    }

    /// Ends a start-up from disk: see `Registry.finishRestore`.
    func finishRestore(changeIndex: UInt64, now: Instant) {
        registry.finishRestore(changeIndex: changeIndex, now: now)
    }

    /// Takes back changes that could not be written (see `Registry.revert`).
    func revert(_ changes: [JournalChange], now: Instant) {
        registry.revert(changes, now: now)
    }
}

/// The route a request is counted under in `/metrics`.
enum RouteLabel: Int, CaseIterable {
    case register, heartbeat, deregister, status, discover, services, health, ready, metrics, watch, watchAll, other

    var template: String {
        switch self {
        case .register: return "/register"
        case .heartbeat: return "/heartbeat"
        case .deregister: return "/deregister"
        case .status: return "/status"
        case .discover: return "/discover/{service}"
        case .services: return "/services"
        case .health: return "/health"
        case .ready: return "/ready"
        case .metrics: return "/metrics"
        case .watch: return "/watch/{service}"
        case .watchAll: return "/watch"
        case .other: return "other"
        }
    }
}

/// A random number generator behind a concrete type, so that tests can pass a seeded one.
struct RandomSource: RandomNumberGenerator {
    private let nextValue: () -> UInt64

    init<Generator: RandomNumberGenerator>(_ generator: Generator) {
        var generator = generator
        nextValue = { generator.next() }
    }

    mutating func next() -> UInt64 { nextValue() }
}
