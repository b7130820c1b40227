/// What an instance says about itself: every field a reader sees that only a change can
/// alter. The one representation of an instance's fields: stored in the registry, listed in
/// snapshots, written to disk, compared to tell a change from a heartbeat.
public struct InstanceAttributes: Hashable, Sendable {
    public var address: String
    public var tags: [String]
    /// Sorted by key, each key once.
    public var metadata: [MetadataEntry]
    public var weight: Int
    public var zone: String?
    public var status: InstanceStatus
    /// This instance's own heartbeat timeout; nil for the server's; `noExpiry` for none.
    public var ttl: Duration?
    /// Checks the registry runs or the instance reports, each with its verdict.
    public var checks: [HealthCheck]

    public static let defaultWeight = 100
    /// A `ttl` that never runs out: the instance stays until it is deregistered, or until a
    /// check with `deregisterAfter` has been critical that long (how Consul registers).
    public static let noExpiry = Duration.zero

    public init(address: String, tags: [String] = [], metadata: [MetadataEntry] = [], weight: Int = defaultWeight,
                zone: String? = nil, status: InstanceStatus = .up, ttl: Duration? = nil, checks: [HealthCheck] = []) {
        self.address = address
        self.tags = tags
        self.metadata = metadata
        self.weight = weight
        self.zone = zone
        self.status = status
        self.ttl = ttl
        self.checks = checks
    }

    /// A critical check takes the instance out of default discovery, whatever its status.
    public var hasCriticalCheck: Bool {
        checks.contains { $0.status == .critical }
    }

    /// The worst verdict of its checks (passing when it has none).
    public var health: CheckStatus {
        var worst = CheckStatus.passing
        for check in checks {
            if check.status == .critical { return .critical }
            if check.status == .warning { worst = .warning }
        }
        return worst
    }
}

/// A type that carries an instance's attributes reads them as its own fields.
public protocol CarriesInstanceAttributes {
    var attributes: InstanceAttributes { get }
}

extension CarriesInstanceAttributes {
    public var address: String { attributes.address }
    public var tags: [String] { attributes.tags }
    public var metadata: [MetadataEntry] { attributes.metadata }
    public var weight: Int { attributes.weight }
    public var zone: String? { attributes.zone }
    public var status: InstanceStatus { attributes.status }
    public var checks: [HealthCheck] { attributes.checks }
}
