/// One service in the listing.
public struct ServiceSummary: Equatable, Sendable {
    public let name: String
    /// Instances whose deadline has not passed (or that protection keeps), by status.
    public let instanceCount: Int
    public let countsByStatus: [InstanceStatus: Int]
    /// The same instances by the worst verdict of their checks (passing without checks).
    public let countsByHealth: [CheckStatus: Int]
    /// Every tag any of its instances carries, sorted.
    public let tags: [String]
    /// Every zone any of its instances is in, sorted.
    public let zones: [String]
    public let changeIndex: UInt64

    /// Some instance is not UP, or some check is not passing.
    public var hasProblem: Bool {
        countsByStatus[.up, default: 0] != instanceCount || countsByHealth[.passing, default: 0] != instanceCount
    }
}

/// Which services a listing keeps (`/services?tag=…`): those with at least one instance
/// that matches each condition given (not necessarily the same instance).
public struct ServiceFilter: Equatable, Sendable {
    public var tags: [String] = []
    public var zone: String?
    public var status: InstanceStatus?
    public var health: CheckStatus?
    /// Only services with a problem (`ServiceSummary.hasProblem`).
    public var problemsOnly = false

    public init() {}

    public var isEmpty: Bool { tags.isEmpty && zone == nil && status == nil && health == nil && !problemsOnly }

    /// Whether a summary meets every condition.
    public func admits(_ summary: ServiceSummary) -> Bool {
        if problemsOnly && !summary.hasProblem { return false }
        if let status, summary.countsByStatus[status, default: 0] == 0 { return false }
        if let health, summary.countsByHealth[health, default: 0] == 0 { return false }
        if let zone, !summary.zones.contains(zone) { return false }
        return tags.allSatisfy(summary.tags.contains)
    }
}
