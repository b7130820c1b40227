/// Whether an instance should receive traffic, as the instance (or an operator) says.
public enum InstanceStatus: String, CaseIterable, Sendable {
    /// Ready for traffic; the only status listed by default.
    case up = "UP"
    case starting = "STARTING"
    case down = "DOWN"
    /// Healthy but taken out of rotation on purpose (maintenance, a canary on hold).
    case outOfService = "OUT_OF_SERVICE"
}

/// A per-instance heartbeat timeout as a client asked for it.
public enum TTLRequest: Equatable, Sendable {
    /// Back to the server's heartbeat timeout.
    case serverDefault
    /// This many seconds, exactly as sent. The core checks it against the policy's bounds
    /// before it becomes a `Duration`, so no number a client can send (`-1e10`, `1e300`)
    /// reaches a conversion that traps, and a refusal reports the number that was sent.
    case seconds(Double)

    /// The same request for a `Duration` (restoring, tools, tests).
    public static func duration(_ duration: Duration) -> TTLRequest {
        .seconds(Double(duration.wholeNanoseconds) / 1e9)
    }
}

/// The optional fields of a registration. `nil` means "not given": a new instance takes the
/// default and an existing one keeps its value, so a client that re-registers as a
/// heartbeat (as the seed's did) does not undo an operator's `OUT_OF_SERVICE`. `zone` can
/// also be cleared explicitly (`.some(nil)`), and `ttl` set back to `.serverDefault`.
public struct InstanceFields: Equatable, Sendable {
    public var tags: [String]?
    /// Sorted by key and unique: the order they are stored and listed in.
    public var metadata: [(key: String, value: String)]?
    public var weight: Int?
    public var zone: String??
    public var status: InstanceStatus?
    /// This instance's heartbeat timeout.
    public var ttl: TTLRequest?

    public init(tags: [String]? = nil, metadata: [(key: String, value: String)]? = nil, weight: Int? = nil,
                zone: String?? = nil, status: InstanceStatus? = nil, ttl: TTLRequest? = nil) {
        self.tags = tags
        self.metadata = metadata
        self.weight = weight
        self.zone = zone
        self.status = status
        self.ttl = ttl
    }

    public static func == (lhs: InstanceFields, rhs: InstanceFields) -> Bool {
        lhs.tags == rhs.tags && lhs.weight == rhs.weight && lhs.zone == rhs.zone && lhs.status == rhs.status
            && lhs.ttl == rhs.ttl
            && (lhs.metadata == nil) == (rhs.metadata == nil) && sameMetadata(lhs.metadata ?? [], rhs.metadata ?? [])
    }

    public static let defaultWeight = 100
}

/// One registered instance as a reader sees it.
public struct InstanceSnapshot: Equatable, Sendable {
    public let id: String
    public let address: String
    public let tags: [String]
    public let metadata: [(key: String, value: String)]
    public let weight: Int
    public let zone: String?
    public let status: InstanceStatus
    /// When the instance was first registered; a re-registration does not move it.
    public let registeredAt: Instant
    public let lastHeartbeat: Instant
    public let deadline: Instant
    /// The heartbeat timeout in force for this instance.
    public let ttl: Duration
    /// Kept past its deadline by expiry protection.
    public let isProtected: Bool

    public static func == (lhs: InstanceSnapshot, rhs: InstanceSnapshot) -> Bool {
        lhs.id == rhs.id && lhs.address == rhs.address && lhs.tags == rhs.tags && sameMetadata(lhs.metadata, rhs.metadata)
            && lhs.weight == rhs.weight && lhs.zone == rhs.zone && lhs.status == rhs.status
            && lhs.registeredAt == rhs.registeredAt && lhs.lastHeartbeat == rhs.lastHeartbeat
            && lhs.deadline == rhs.deadline && lhs.ttl == rhs.ttl && lhs.isProtected == rhs.isProtected
    }
}

/// What the registry is told at start-up.
public struct RegistryPolicy: Sendable {
    /// The heartbeat timeout of an instance that did not ask for its own `ttl`.
    public var heartbeatTimeout: Duration
    /// The bounds of a per-instance `ttl`.
    public var minimumTTL: Duration
    public var maximumTTL: Duration
    /// When set, a service never loses more than this share of its instances to expiry
    /// within one heartbeat timeout; see `Registry` for the whole rule.
    public var expiryProtection: Double?
    /// When set, every durable change is also queued for `Registry.takeJournal()`.
    public var journaling: Bool

    public init(heartbeatTimeout: Duration, minimumTTL: Duration = .seconds(1), maximumTTL: Duration = .seconds(3600),
                expiryProtection: Double? = nil, journaling: Bool = false) {
        self.heartbeatTimeout = heartbeatTimeout
        self.minimumTTL = minimumTTL
        self.maximumTTL = maximumTTL
        self.expiryProtection = expiryProtection
        self.journaling = journaling
    }
}

/// Metadata lists are arrays of tuples, which are not `Equatable`: equal when the same
/// pairs come in the same order (they are kept sorted by key).
func sameMetadata(_ lhs: [(key: String, value: String)], _ rhs: [(key: String, value: String)]) -> Bool {
    lhs.elementsEqual(rhs) { $0.key == $1.key && $0.value == $1.value }
}
