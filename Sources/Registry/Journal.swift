/// Everything about an instance that survives a restart. Heartbeat times are soft state
/// and are not here: a restored instance gets a full TTL from the moment it is restored.
public struct InstanceState: Equatable, Sendable {
    public var service: String
    public var id: String
    public var address: String
    public var tags: [String]
    /// Sorted by key.
    public var metadata: [(key: String, value: String)]
    public var weight: Int
    public var zone: String?
    public var status: InstanceStatus
    /// This instance's own TTL; nil for the server's heartbeat timeout.
    public var ttl: Duration?
    /// On the registry's monotonic time line; the persistence layer converts it to wall time.
    public var registeredAt: Instant

    public init(service: String, id: String, address: String, tags: [String] = [], metadata: [(key: String, value: String)] = [],
                weight: Int = InstanceFields.defaultWeight, zone: String? = nil, status: InstanceStatus = .up,
                ttl: Duration? = nil, registeredAt: Instant) {
        self.service = service
        self.id = id
        self.address = address
        self.tags = tags
        self.metadata = metadata
        self.weight = weight
        self.zone = zone
        self.status = status
        self.ttl = ttl
        self.registeredAt = registeredAt
    }

    public static func == (lhs: InstanceState, rhs: InstanceState) -> Bool {
        lhs.service == rhs.service && lhs.id == rhs.id && lhs.address == rhs.address && lhs.tags == rhs.tags
            && sameMetadata(lhs.metadata, rhs.metadata)
            && lhs.weight == rhs.weight && lhs.zone == rhs.zone && lhs.status == rhs.status && lhs.ttl == rhs.ttl
            && lhs.registeredAt == rhs.registeredAt
    }
}

/// One durable change, in the order the registry made it. Replaying a journal from an empty
/// registry (or from a snapshot) rebuilds every instance with all its fields.
public enum JournalEntry: Equatable, Sendable {
    /// An instance was registered, or one of its durable fields changed: its whole state.
    case upsert(InstanceState, changeIndex: UInt64)
    /// An instance was deregistered or expired.
    case remove(service: String, id: String, changeIndex: UInt64)
    /// The change index moved past every record before this one without a durable change
    /// (expiry protection starting or lifting, a change taken back): written so that a
    /// restarted registry never hands out an index it already used.
    case indexAdvanced(to: UInt64)

    public var changeIndex: UInt64 {
        switch self {
        case .upsert(_, let index), .remove(_, _, let index), .indexAdvanced(let index): return index
        }
    }
}

/// A journal entry and what it replaced: the instance's durable state before the change,
/// or nil when the change created it. `Registry.revert(_:now:)` uses it to take back
/// changes that could not be written.
public struct JournalChange: Sendable {
    public let entry: JournalEntry
    public let prior: InstanceState?
    /// A removal because heartbeats stopped, which `Registry.revert(_:now:)` leaves alone.
    public let isExpiry: Bool

    public init(_ entry: JournalEntry, prior: InstanceState?, isExpiry: Bool = false) {
        self.entry = entry
        self.prior = prior
        self.isExpiry = isExpiry
    }
}
