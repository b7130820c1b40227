/// Everything about an instance that survives a restart. Heartbeat times are soft state
/// and are not here: a restored instance gets a full TTL from the moment it is restored.
public struct InstanceState: Equatable, Sendable, CarriesInstanceAttributes {
    public var service: String
    public var id: String
    public var attributes: InstanceAttributes
    /// On the registry's monotonic time line; the persistence layer converts it to wall time.
    public var registeredAt: Instant

    public init(service: String, id: String, attributes: InstanceAttributes, registeredAt: Instant) {
        self.service = service
        self.id = id
        self.attributes = attributes
        self.registeredAt = registeredAt
    }

    public init(service: String, id: String, address: String, tags: [String] = [], metadata: [MetadataEntry] = [],
                weight: Int = InstanceAttributes.defaultWeight, zone: String? = nil, status: InstanceStatus = .up,
                ttl: Duration? = nil, registeredAt: Instant) {
        self.init(service: service, id: id,
                  attributes: InstanceAttributes(address: address, tags: tags, metadata: metadata, weight: weight, zone: zone,
                                                 status: status, ttl: ttl),
                  registeredAt: registeredAt)
    }

    /// The instance's own TTL; nil for the server's heartbeat timeout.
    public var ttl: Duration? { attributes.ttl }
}
