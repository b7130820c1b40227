/// The optional fields of a registration: a change to apply to an instance's attributes.
/// `nil` means "not given": a new instance takes the default and an existing one keeps its
/// value, so a client that re-registers as a heartbeat (as the seed's did) does not undo an
/// operator's `OUT_OF_SERVICE`. `zone` can also be cleared explicitly (`.some(nil)`), and
/// `ttl` set back to `.serverDefault`.
public struct InstanceFields: Equatable, Sendable {
    public var tags: [String]?
    /// Sorted by key, each key once.
    public var metadata: [MetadataEntry]?
    public var weight: Int?
    public var zone: String??
    public var status: InstanceStatus?
    public var ttl: TTLRequest?
    /// The instance's checks, all of them (an empty list removes them). A check repeated with
    /// the same definition keeps its verdict; a new or changed one starts with the status it
    /// was given.
    public var checks: [HealthCheck]?
    /// Set by `init(_ attributes:)`: the checks' verdicts are taken as given, not kept from
    /// the instance (a recovery or a take-back restores a state exactly).
    var exactChecks = false

    public init(tags: [String]? = nil, metadata: [MetadataEntry]? = nil, weight: Int? = nil, zone: String?? = nil,
                status: InstanceStatus? = nil, ttl: TTLRequest? = nil, checks: [HealthCheck]? = nil) {
        self.tags = tags
        self.metadata = metadata
        self.weight = weight
        self.zone = zone
        self.status = status
        self.ttl = ttl
        self.checks = checks
    }

    /// The fields that give an instance exactly `attributes` (all of them set).
    public init(_ attributes: InstanceAttributes) {
        self.init(tags: attributes.tags, metadata: attributes.metadata, weight: attributes.weight, zone: .some(attributes.zone),
                  status: attributes.status, ttl: attributes.ttl.map(TTLRequest.duration) ?? .serverDefault, checks: attributes.checks)
        exactChecks = true
    }

    /// `base` with these fields applied and `address`. Only for fields that passed
    /// `Registry`'s check: a TTL in seconds is within the policy's bounds (days at most), so
    /// its conversion cannot overflow.
    func applied(to base: InstanceAttributes, address: String) -> InstanceAttributes {
        var attributes = base
        attributes.address = address
        if let tags { attributes.tags = tags }
        if let metadata { attributes.metadata = metadata }
        if let weight { attributes.weight = weight }
        if let zone { attributes.zone = zone }
        if let status { attributes.status = status }
        switch ttl {
        case nil: break
        case .serverDefault?: attributes.ttl = nil
        case .seconds(let seconds)?: attributes.ttl = .nanoseconds(Int64((seconds * 1e9).rounded()))
        case .never?: attributes.ttl = InstanceAttributes.noExpiry
        }
        if let checks {
            attributes.checks = exactChecks ? checks : checks.map { check in
                guard let kept = base.checks.first(where: { $0.hasSameDefinition(as: check) }) else { return check }
                var check = check
                check.status = kept.status
                return check
            }
        }
        return attributes
    }
}
