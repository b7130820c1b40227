/// One registered instance as a reader sees it.
public struct InstanceSnapshot: Equatable, Sendable, CarriesInstanceAttributes {
    public let id: String
    public let attributes: InstanceAttributes
    /// When the instance was first registered; a re-registration does not move it.
    public let registeredAt: Instant
    public let lastHeartbeat: Instant
    public let deadline: Instant
    /// The heartbeat timeout in force for this instance: its own, or the server's
    /// (`InstanceAttributes.noExpiry` when it has none).
    public let ttl: Duration
    /// Kept past its deadline by expiry protection.
    public let isProtected: Bool

    public init(id: String, attributes: InstanceAttributes, registeredAt: Instant, lastHeartbeat: Instant, deadline: Instant,
                ttl: Duration, isProtected: Bool) {
        self.id = id
        self.attributes = attributes
        self.registeredAt = registeredAt
        self.lastHeartbeat = lastHeartbeat
        self.deadline = deadline
        self.ttl = ttl
        self.isProtected = isProtected
    }
}
