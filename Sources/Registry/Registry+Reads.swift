/// Reads. Each one that lists a service first expires what is due in it at `now`, so that
/// no read ever returns an expired instance, whatever the caller did before.
extension Registry {
    /// Instances held, including any whose deadline passed and that no read or expiry
    /// cycle has removed yet.
    public var instanceCount: Int { instanceSlots.count }
    public var serviceCount: Int { serviceSlots.count }
    /// Every service with an instance, due or not, in no particular order.
    public var serviceNames: [String] { Array(serviceSlots.keys) }

    /// Whether the service has instances, due or not.
    public func contains(service: String) -> Bool {
        serviceSlots[service] != nil
    }

    /// The instances the service holds, due or not (0 when it has none).
    public func instanceCount(ofService name: String) -> Int {
        serviceSlots[name].map { services[Int($0)].liveCount } ?? 0
    }

    /// Whether the service holds an instance of that id, due or not.
    public func holds(service: String, id: String) -> Bool {
        peekInstance(service: service, id: id) != nil
    }

    /// The change index of the service's last visible change, after expiring its due
    /// instances; nil when the service has no instance.
    ///
    /// Cheap when nothing in the service can be due: one dictionary lookup and a compare.
    public mutating func serviceChangeIndex(_ service: String, now: Instant) -> UInt64? {
        liveService(service, now: now).map { services[Int($0)].changeIndex }
    }

    /// The service's instances in registration order, after expiring its due ones.
    public mutating func instances(ofService service: String, now: Instant) -> [InstanceSnapshot] {
        guard let serviceSlot = liveService(service, now: now) else { return [] }
        let record = services[Int(serviceSlot)]
        var result: [InstanceSnapshot] = []
        result.reserveCapacity(record.liveCount)
        for slot in record.order where slot >= 0 {
            result.append(snapshot(of: instances[Int(slot)]))
        }
        return result
    }

    /// The slot and version of each of the service's instances, in registration order,
    /// after expiring its due ones: what a reader compares with what it rendered before, to
    /// re-render only what changed (see `instance(inSlot:)`).
    public mutating func instanceVersions(ofService service: String, now: Instant) -> [(slot: Int32, version: UInt64)] {
        guard let serviceSlot = liveService(service, now: now) else { return [] }
        var result: [(slot: Int32, version: UInt64)] = []
        result.reserveCapacity(services[Int(serviceSlot)].liveCount)
        for slot in services[Int(serviceSlot)].order where slot >= 0 {
            result.append((slot, instances[Int(slot)].version))
        }
        return result
    }

    /// One instance as `instances(ofService:now:)` would list it (due ones are not expired
    /// here: a peek for the checker and the Consul view, which then read the service).
    public func instance(service: String, id: String) -> InstanceSnapshot? {
        peekInstance(service: service, id: id).map { snapshot(of: instances[Int($0)]) }
    }

    /// The instance in `slot`, as `instances(ofService:now:)` lists it. `slot` must come
    /// from `instanceVersions(ofService:now:)` with nothing changed since.
    public func instance(inSlot slot: Int32) -> InstanceSnapshot {
        snapshot(of: instances[Int(slot)])
    }

    /// The last heartbeat of each of the service's instances, in the order of
    /// `instanceVersions(ofService:now:)`: what changes between change indexes without
    /// moving them.
    public mutating func lastHeartbeats(ofService service: String, now: Instant) -> [Instant] {
        guard let serviceSlot = liveService(service, now: now) else { return [] }
        var result: [Instant] = []
        result.reserveCapacity(services[Int(serviceSlot)].liveCount)
        for slot in services[Int(serviceSlot)].order where slot >= 0 {
            result.append(Instant(nanoseconds: instances[Int(slot)].lastHeartbeat))
        }
        return result
    }

    /// Instances by status across every service (overdue ones not yet removed included).
    public var instanceCountsByStatus: [InstanceStatus: Int] {
        var totals: [InstanceStatus: Int] = [:]
        for slot in serviceSlots.values {
            for status in InstanceStatus.allCases { totals[status, default: 0] += services[Int(slot)].counts.statuses[status] }
        }
        return totals
    }

    /// Every service with at least one instance whose deadline is after `now` (or that
    /// protection keeps), sorted by name. Due instances are left out without being removed,
    /// so the work beyond the listing itself is proportional to the number of due instances.
    public func serviceSummaries(now: Instant) -> [ServiceSummary] {
        let due = dueInstanceCounts(now: now)
        var result: [ServiceSummary] = []
        result.reserveCapacity(serviceSlots.count)
        for name in serviceSlots.keys {
            if let summary = summary(ofService: name, leavingOut: due[name]) { result.append(summary) }
        }
        result.sort { $0.name < $1.name }
        return result
    }

    /// One service's summary as stored, less `leavingOut` (what its due instances hold); nil
    /// when nothing is left.
    public func summary(ofService name: String, leavingOut due: ServiceCounts? = nil) -> ServiceSummary? {
        guard let slot = serviceSlots[name] else { return nil }
        let record = services[Int(slot)]
        let counts = due.map { record.counts.subtracting($0) } ?? record.counts
        let live = counts.instanceCount
        guard live > 0 else { return nil }
        var byHealth: [CheckStatus: Int] = [:]
        for health in CheckStatus.allCases where counts[health] > 0 { byHealth[health] = counts[health] }
        return ServiceSummary(name: name, instanceCount: live, countsByStatus: counts.statuses.nonZero, countsByHealth: byHealth,
                              tags: counts.tags.keys.sorted(), zones: counts.zones.keys.sorted(), changeIndex: record.changeIndex)
    }

    /// Whether a service's instances as stored meet `filter` (instances past their deadline
    /// that no expiry has removed yet count): a few lookups, no allocation.
    public func service(_ name: String, meets filter: ServiceFilter) -> Bool {
        guard let slot = serviceSlots[name] else { return false }
        let counts = services[Int(slot)].counts
        if filter.problemsOnly && !counts.hasProblem { return false }
        if let status = filter.status, counts.statuses[status] == 0 { return false }
        if let health = filter.health, counts[health] == 0 { return false }
        if let zone = filter.zone, counts.zones[zone] == nil { return false }
        for tag in filter.tags where counts.tags[tag] == nil { return false }
        return true
    }

    /// Whether a service has a problem (`ServiceSummary.hasProblem`), as stored.
    public func serviceHasProblem(_ name: String) -> Bool {
        serviceSlots[name].map { services[Int($0)].counts.hasProblem } ?? false
    }

    /// Instances whose deadline has passed but that no read or expiry has removed yet, counted
    /// by service. Costs what is due (the index is walked up to `now` only).
    public func dueInstanceCounts(now: Instant) -> [String: ServiceCounts] {
        var due: [String: ServiceCounts] = [:]
        deadlines.forEach(keyAtMost: now.nanoseconds) { slot in
            let instance = instances[Int(slot)]
            if instance.deadline <= now.nanoseconds {
                due[services[Int(instance.service)].name, default: ServiceCounts()].count(instance.attributes, by: 1)
            }
        }
        return due
    }

    /// The service's slot once its due instances are expired; nil when it has none left.
    private mutating func liveService(_ service: String, now: Instant) -> Int32? {
        guard let serviceSlot = serviceSlots[service] else { return nil }
        expireDueInstances(ofService: serviceSlot, now: now)
        return serviceSlots[service] == nil ? nil : serviceSlot
    }

    private func snapshot(of instance: InstanceRecord) -> InstanceSnapshot {
        InstanceSnapshot(
            id: instance.id, attributes: instance.attributes,
            registeredAt: Instant(nanoseconds: instance.registeredAt),
            lastHeartbeat: Instant(nanoseconds: instance.lastHeartbeat),
            deadline: Instant(nanoseconds: instance.deadline),
            ttl: instance.customTTL == InstanceRecord.neverExpires ? InstanceAttributes.noExpiry
                : .nanoseconds(instance.customTTL > 0 ? instance.customTTL : defaultTTLNanos),
            isProtected: instance.isProtected)
    }
}
