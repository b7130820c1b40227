/// What a service's instances hold, counted: by status, by health, and each tag and zone
/// with the number of instances that carry it. Kept up to date on every change (so that
/// `/services` and its filters cost no scan of instances), and made for the instances an
/// answer must leave out (those past their deadline that no expiry has removed yet).
public struct ServiceCounts: Sendable {
    var statuses = StatusCounts()
    var passing = 0
    var warning = 0
    var critical = 0
    var tags: [String: Int] = [:]
    var zones: [String: Int] = [:]

    public init() {}

    mutating func count(_ attributes: InstanceAttributes, by delta: Int) {
        statuses[attributes.status] += delta
        switch attributes.health {
        case .passing: passing += delta
        case .warning: warning += delta
        case .critical: critical += delta
        }
        for tag in attributes.tags {
            let count = tags[tag, default: 0] + delta
            tags[tag] = count > 0 ? count : nil
        }
        if let zone = attributes.zone {
            let count = zones[zone, default: 0] + delta
            zones[zone] = count > 0 ? count : nil
        }
    }

    /// These counts less `other`'s (instances an answer leaves out).
    func subtracting(_ other: ServiceCounts) -> ServiceCounts {
        var result = self
        for status in InstanceStatus.allCases { result.statuses[status] -= other.statuses[status] }
        result.passing -= other.passing
        result.warning -= other.warning
        result.critical -= other.critical
        for (tag, count) in other.tags {
            let left = result.tags[tag, default: 0] - count
            result.tags[tag] = left > 0 ? left : nil
        }
        for (zone, count) in other.zones {
            let left = result.zones[zone, default: 0] - count
            result.zones[zone] = left > 0 ? left : nil
        }
        return result
    }

    subscript(health: CheckStatus) -> Int {
        switch health {
        case .passing: return passing
        case .warning: return warning
        case .critical: return critical
        }
    }

    public var instanceCount: Int { InstanceStatus.allCases.reduce(0) { $0 + statuses[$1] } }

    /// Some instance is not UP, or some check is not passing: what an operator looks at first.
    public var hasProblem: Bool {
        warning > 0 || critical > 0 || statuses[.up] != instanceCount
    }
}
