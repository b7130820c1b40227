/// What `Registry.register` did.
public enum RegisterOutcome: Equatable, Sendable {
    /// A new instance; its uptime starts now.
    case registered
    /// The instance was already registered: this counted as a heartbeat, and `changed`
    /// says whether any field a reader sees was updated too.
    case updated(changed: Bool)
    case invalid(Violation)
}

/// What `Registry.heartbeat`, `setStatus` and `deregister` did.
public enum InstanceOutcome: Equatable, Sendable {
    /// Done; `changed` says whether a reader sees a difference (a new status, a removal).
    case done(changed: Bool)
    case unknownService
    case unknownInstance
    case invalid(Violation)
}

/// Something the registry did on its own, for the caller to log.
public enum RegistryEvent: Equatable, Sendable {
    /// An instance removed because its heartbeat deadline passed.
    case expired(service: String, id: String, address: String, lastHeartbeat: Instant)
    /// Expiry protection started keeping a service's overdue instances.
    case protectionStarted(service: String, overdue: Int, instances: Int)
    /// Heartbeats returned; the service's overdue instances expire normally again.
    case protectionLifted(service: String)
}

/// One service in the listing.
public struct ServiceSummary: Equatable, Sendable {
    public let name: String
    /// Instances whose deadline has not passed (or that protection keeps), by status.
    public let instanceCount: Int
    public let countsByStatus: [InstanceStatus: Int]
    /// Every tag any of its instances carries, sorted.
    public let tags: [String]
    public let changeIndex: UInt64
}

/// How far one bounded `Registry.expireDue(now:limit:)` call got.
public struct ExpiryProgress: Equatable, Sendable {
    /// Instances removed by this call.
    public let expired: Int
    /// True when the limit stopped the call while due work remained: call again soon.
    public let moreDue: Bool
}
