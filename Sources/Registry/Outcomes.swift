/// What `Registry.register` did.
public enum RegisterOutcome: Equatable, Sendable {
    /// A new instance; its uptime starts now.
    case registered
    /// The instance was already registered: this counted as a heartbeat.
    case updated
    case invalid(NameViolation)
}

/// What `Registry.heartbeat` did.
public enum HeartbeatOutcome: Equatable, Sendable {
    case renewed
    case unknownService
    case unknownInstance
    case invalid(NameViolation)
}

/// What `Registry.deregister` did.
public enum DeregisterOutcome: Equatable, Sendable {
    case deregistered
    case unknownService
    case unknownInstance
    case invalid(NameViolation)
}

/// An instance removed because its heartbeat deadline passed.
public struct ExpiredInstance: Equatable, Sendable {
    public let service: String
    public let address: String
    public let lastHeartbeat: Instant
    public let deadline: Instant
}

/// One registered instance as a reader sees it.
public struct InstanceSnapshot: Equatable, Sendable {
    public let address: String
    /// When the instance was first registered; a re-registration does not move it.
    public let registeredAt: Instant
    public let lastHeartbeat: Instant
    public let deadline: Instant
}

/// One service in the listing.
public struct ServiceSummary: Equatable, Sendable {
    public let name: String
    /// Instances whose deadline has not passed.
    public let instanceCount: Int
}

/// How far one bounded `Registry.expireDue(now:limit:)` call got.
public struct ExpiryProgress: Equatable, Sendable {
    /// Instances removed by this call.
    public let expired: Int
    /// True when the limit stopped the call while due work remained: call again soon.
    public let moreDue: Bool
}
