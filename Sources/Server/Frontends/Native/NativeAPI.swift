#if canImport(Glibc)
import Glibc
#endif
import Registry

/// The registry's own HTTP API, the seed's and its extensions: its routes (`routes`), their
/// handlers (writes, reads, operations, one file each), and the renderings that keep its
/// answers cheap (`ServiceView` per service, `ServicesListing`). It does no I/O and reads no
/// clock; it reaches the registry only through `RegistryService`.
final class NativeAPI {
    let service: RegistryService
    let logger: Logger
    /// Source of `pick=random|weighted`; injectable so that tests can be exact.
    var random: RandomSource

    /// Per service, what its discover answers are made of (see `ServiceView`).
    var views: [String: ServiceView] = [:]
    /// The `/services` answer, kept up to date change by change.
    let listing = ServicesListing()

    /// The health checker, whose results (output, last run) `/discover` shows.
    var checker: HealthChecker?

    /// Cluster mode's parts (`--etcd`); nil for a single registry.
    var cluster: Cluster?
    /// What ACL entries' namespaces may hold (`max_instances`, `max_services`).
    var quotas: Quotas?

    /// Whether an ACL file is in force (`GET /access` says so).
    var aclInForce: () -> Bool = { false }

    /// Renders `/metrics`; set by whoever holds the figures (most live outside this API).
    var metricsExposition: (() -> [UInt8])?

    /// The longest a blocking query is held (`--max-wait`); longer waits are cut to it.
    let maximumWait: Duration

    static let tickNanoseconds = ServiceView.tickNanoseconds
    /// The answer to nearly every heartbeat, built once: the hot path allocates nothing for it.
    static let heartbeatRenewedBody = Response.status(200, "ok", "Heartbeat updated").body

    init(service: RegistryService, logger: Logger, random: RandomSource = RandomSource(SystemRandomNumberGenerator()),
         maximumWait: Duration = .seconds(600)) {
        self.service = service
        self.logger = logger
        self.random = random
        self.maximumWait = maximumWait
        service.onChange { [unowned self] changed in listing.noteChanged(changed) }
        // A bounded share of the listing's upkeep per turn; a read does the rest.
        service.onEndOfTurn { [unowned self] in service.read { listing.maintain($0, limit: 1024) } }
    }

    /// Every route of this API, once. `openapi.yaml` must describe exactly these (tested).
    /// The handlers hold the API strongly (the API holds no table, so there is no cycle):
    /// an `unowned` capture would cost a reference check on every request.
    func routes() -> [Route] {
        let reads: [HTTPMethod] = [.get, .head]
        return [
            Route(template: "/register", methods: [.post], frontEnd: .native, permission: .write) { [self] in register($0) },
            Route(template: "/heartbeat", methods: [.post], frontEnd: .native, permission: .write) { [self] in
                instanceWrite($0, .heartbeat)
            },
            Route(template: "/deregister", methods: [.post], frontEnd: .native, permission: .write) { [self] in
                instanceWrite($0, .deregister)
            },
            Route(template: "/status", methods: [.post], frontEnd: .native, permission: .write) { [self] in
                instanceWrite($0, .status)
            },
            Route(template: "/discover/{service}", methods: reads, frontEnd: .native, permission: .read) { [self] in
                discover($0, stream: false)
            },
            Route(template: "/services", methods: reads, frontEnd: .native, permission: .read) { [self] in
                services($0, stream: false)
            },
            Route(template: "/watch", methods: reads, frontEnd: .native, permission: .read) { [self] in
                services($0, stream: true)
            },
            Route(template: "/watch/{service}", methods: reads, frontEnd: .native, permission: .read) { [self] in
                discover($0, stream: true)
            },
            Route(template: "/health", methods: reads, frontEnd: .native, permission: .none) { [self] in health($0) },
            Route(template: "/ready", methods: reads, frontEnd: .native, permission: .none) { [self] _ in ready() },
            Route(template: "/access", methods: reads, frontEnd: .native, permission: .none) { [self] in access($0) },
            Route(template: "/metrics", methods: reads, frontEnd: .native, permission: .operator) { [self] _ in metrics() },
            Route(template: "/cluster", methods: reads, frontEnd: .native, permission: .operator) { [self] in clusterState($0) },
            Route(template: "/cluster/heartbeats", methods: [.post], frontEnd: .native, permission: .operator, rateLimited: false) { [self] in
                clusterHeartbeats($0)
            },
        ]
    }

    /// Renders the `/services` listing of what is registered now (see `ServicesListing`);
    /// from then on it is kept up to date change by change.
    func prepareListing() {
        service.read { listing.prepare($0) }
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
