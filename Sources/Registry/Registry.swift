/// The registry: services, their instances and their heartbeat deadlines, as a pure
/// single-threaded state machine.
///
/// Every method that depends on time takes `now`; nothing here reads a clock, does I/O or
/// locks. An instance is gone at its deadline (`lastHeartbeat + ttl`) whether or not the
/// expiry cycle has run yet: every read and write checks deadlines first (lazy expiry, as
/// Redis does on key access), and `expireDue(now:limit:)` removes the rest in bounded
/// batches (active expiry).
///
/// What the caller must act on comes out of three queues: `takeEvents()` (expiries and
/// protection changes, to log), `takeChangedServices()` (services whose visible state
/// changed, to wake their watchers) and, with `policy.journaling`, `takeJournal()` (durable
/// changes, to store).
///
/// **Expiry protection** (off unless `policy.expiryProtection` is set to a share `r`): an
/// overdue instance is expired only if, counting it, no more than `r` of its service's
/// instances expired within the last heartbeat timeout. Otherwise the service enters
/// protection: its overdue instances stay listed, marked protected, and none expires until a
/// protected instance heartbeats again (the cut is over). Then protection lifts and the
/// instances still overdue are judged afresh. The price: while protection holds, instances
/// that really died stay listed (marked protected) until heartbeats return or they are
/// deregistered — including the only instance of a one-instance service.
///
/// The type is spread over files by concern: writes here, `Registry+Reads`,
/// `Registry+Expiry` and `Registry+Durability`.
public struct Registry: Sendable {
    public let policy: RegistryPolicy
    let defaultTTLNanos: Int64
    let graceNanos: Int64

    var serviceSlots: [String: Int32] = [:]
    var services: [ServiceRecord] = []
    var freeServiceSlots: [Int32] = []

    var instanceSlots: [InstanceKey: Int32] = [:]
    var instances: [InstanceRecord] = []
    var freeInstanceSlots: [Int32] = []

    /// Every instance not under protection, keyed by a lower bound of its deadline.
    var deadlines = DeadlineHeap()
    var events: [RegistryEvent] = []
    var changedServices: [String] = []
    var journal: [JournalChange] = []
    /// In a mirror: the store revision being applied (every change made meanwhile carries
    /// it), nil between applications.
    var applyingRevision: UInt64?
    /// In a mirror: expiries decided by `takeExpiryProposals`, not yet handed out.
    var expiryProposals: [Proposal] = []

    /// Starts at 1 and grows by one for every change a reader can see: an instance added,
    /// removed or expired, or any field of one changed. Heartbeats alone do not move it.
    public internal(set) var changeIndex: UInt64 = 1

    public init(policy: RegistryPolicy) {
        precondition(policy.heartbeatTimeout > .zero, "the heartbeat timeout must be positive")
        precondition(policy.minimumTTL > .zero && policy.minimumTTL <= policy.maximumTTL, "invalid TTL bounds")
        self.policy = policy
        self.defaultTTLNanos = policy.heartbeatTimeout.wholeNanoseconds
        self.graceNanos = policy.expiryGrace.wholeNanoseconds
    }

    public init(heartbeatTimeout: Duration) {
        self.init(policy: RegistryPolicy(heartbeatTimeout: heartbeatTimeout))
    }

    public var heartbeatTimeout: Duration { policy.heartbeatTimeout }

    // MARK: Writes

    /// Registers an instance, or updates it and counts a heartbeat when `service` already
    /// has an instance with this id. The id defaults to the address; an instance found by
    /// that default must be at the address (another's explicit id is not taken over).
    public mutating func register(service: String, id: String? = nil, address: String,
                                  fields: InstanceFields = InstanceFields(), now: Instant) -> RegisterOutcome {
        if let violation = Violation.checkServiceName(service) ?? Violation.checkAddress(address)
            ?? id.flatMap(Violation.checkID) ?? check(fields) {
            return .invalid(violation)
        }
        let named = id == nil
        let id = id ?? address
        if case .found(let slot) = findLiveInstance(service: service, id: id, now: now) {
            if named, instances[Int(slot)].attributes.address != address {
                return .conflict(existingAddress: instances[Int(slot)].attributes.address)
            }
            let before = update(slot, to: fields.applied(to: instances[Int(slot)].attributes, address: address))
            let unprotected = renew(slot, now: now)
            finishChange(of: slot, prior: before, unprotected: unprotected, now: now)
            return .updated(changed: before != nil || unprotected)
        }
        if let limit = limitPassed(byNewInstanceOf: service) { return .overLimit(limit) }
        let base = InstanceAttributes(address: address)
        insert(service: service, id: id, attributes: fields.applied(to: base, address: address), registeredAt: now, now: now)
        return .registered
    }

    /// The limit a new instance of `service` would pass, if any.
    func limitPassed(byNewInstanceOf service: String) -> RegistryLimit? {
        if instanceCount >= policy.maxInstances { return .instances(policy.maxInstances) }
        if serviceCount >= policy.maxServices, !contains(service: service) { return .services(policy.maxServices) }
        return nil
    }

    /// Moves the instance's deadline to `now + ttl`; with `status`, also sets its status.
    public mutating func heartbeat(service: String, id: String, address: String? = nil, status: InstanceStatus? = nil, now: Instant) -> InstanceOutcome {
        withLiveInstance(service: service, id: id, address: address, now: now) { registry, slot in
            // The hot path: no status, or the same one, changes nothing but the deadline.
            var before: InstanceRecord?
            if let status, registry.instances[Int(slot)].attributes.status != status {
                var attributes = registry.instances[Int(slot)].attributes
                attributes.status = status
                before = registry.update(slot, to: attributes)
            }
            let unprotected = registry.renew(slot, now: now)
            registry.finishChange(of: slot, prior: before, unprotected: unprotected, now: now)
            return before != nil || unprotected
        }
    }

    /// Sets the instance's status without counting a heartbeat (an operator may set it).
    public mutating func setStatus(service: String, id: String, address: String? = nil, status: InstanceStatus, now: Instant) -> InstanceOutcome {
        withLiveInstance(service: service, id: id, address: address, now: now) { registry, slot in
            var attributes = registry.instances[Int(slot)].attributes
            attributes.status = status
            let before = registry.update(slot, to: attributes)
            registry.finishChange(of: slot, prior: before, unprotected: false, now: now)
            return before != nil
        }
    }

    /// Gives one of the instance's checks a new verdict (the checker's, or the instance's own
    /// report for a TTL check); with `heartbeat`, also counts a heartbeat, as a TTL check's
    /// report does.
    public mutating func setCheckStatus(service: String, id: String, check checkID: String, status: CheckStatus,
                                        heartbeat: Bool = false, now: Instant) -> InstanceOutcome {
        if case .found(let slot) = findLiveInstance(service: service, id: id, now: now),
           !instances[Int(slot)].attributes.checks.contains(where: { $0.id == checkID }) {
            return .unknownCheck
        }
        return withLiveInstance(service: service, id: id, now: now) { registry, slot in
            var attributes = registry.instances[Int(slot)].attributes
            guard let position = attributes.checks.firstIndex(where: { $0.id == checkID }) else { return false }
            attributes.checks[position].status = status
            let before = registry.update(slot, to: attributes)
            let unprotected = heartbeat ? registry.renew(slot, now: now) : false
            registry.finishChange(of: slot, prior: before, unprotected: unprotected, now: now)
            return before != nil || unprotected
        }
    }

    public mutating func deregister(service: String, id: String, address: String? = nil, now: Instant) -> InstanceOutcome {
        withLiveInstance(service: service, id: id, address: address, now: now) { registry, slot in
            registry.remove(slot)
            return true
        }
    }

    /// Whether any of the three queues holds something for the caller: after a call that
    /// made it so, the caller has work to do (its end-of-turn step).
    public var hasOutput: Bool { !events.isEmpty || !changedServices.isEmpty || !journal.isEmpty }

    /// Returns what the registry did on its own since the last call, oldest first.
    public mutating func takeEvents() -> [RegistryEvent] {
        guard !events.isEmpty else { return [] }
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }

    /// Returns the names of the services whose visible state changed since the last call,
    /// each once, including services that disappeared.
    public mutating func takeChangedServices() -> [String] {
        guard !changedServices.isEmpty else { return [] }
        for name in changedServices {
            if let slot = serviceSlots[name] { services[Int(slot)].awaitingNotice = false }
        }
        defer { changedServices.removeAll(keepingCapacity: true) }
        return changedServices
    }

    /// A ticket for round-robin picks: consecutive calls for one service count up, so
    /// that callers rotate through its instances together.
    public mutating func nextRoundRobinTicket(service: String) -> UInt64 {
        guard let slot = serviceSlots[service] else { return 0 }
        defer { services[Int(slot)].roundRobin &+= 1 }
        return services[Int(slot)].roundRobin
    }

    // MARK: Internals of writes

    func check(_ fields: InstanceFields) -> Violation? {
        if let tags = fields.tags, let violation = Violation.checkTags(tags) { return violation }
        if let metadata = fields.metadata, let violation = Violation.checkMetadata(metadata) { return violation }
        if let weight = fields.weight, let violation = Violation.checkWeight(weight) { return violation }
        if let zone = fields.zone.flatMap({ $0 }), let violation = Violation.checkZone(zone) { return violation }
        if let checks = fields.checks, let violation = Violation.checkHealthChecks(checks) { return violation }
        if case .seconds(let seconds) = fields.ttl {
            // Compared as numbers of seconds, before any conversion: NaN fails both tests.
            let minimum = Double(policy.minimumTTL.wholeNanoseconds) / 1e9
            let maximum = Double(policy.maximumTTL.wholeNanoseconds) / 1e9
            if !(seconds >= minimum && seconds <= maximum) {
                return .ttlOutOfRange(seconds: seconds, minimum: policy.minimumTTL, maximum: policy.maximumTTL)
            }
        }
        return nil
    }

    enum InstanceLookup {
        case found(Int32)
        case noService
        case noInstance
    }

    /// Finds a registered instance that is not overdue. One found past its deadline is
    /// expired here (or protected, and then found), so no caller ever sees or renews an
    /// expired instance; if it was its service's last, the answer is `noService`.
    mutating func findLiveInstance(service: String, id: String, now: Instant) -> InstanceLookup {
        guard let serviceSlot = serviceSlots[service] else { return .noService }
        guard let slot = instanceSlots[InstanceKey(service: serviceSlot, id: id)] else { return .noInstance }
        let instance = instances[Int(slot)]
        if policy.mirrored {
            // Nothing expires on its own in a mirror; one whose removal is proposed is gone
            // for the writes that look it up.
            return instance.isExpiring ? .noInstance : .found(slot)
        }
        if !instance.isProtected && instance.deadline <= now.nanoseconds {
            if expireOrProtect(slot, now: now) {
                return serviceSlots[service] == nil ? .noService : .noInstance
            }
        }
        return .found(slot)
    }

    /// The rules, the lookup and its outcomes, shared by every write on an existing
    /// instance; `change` returns whether a reader sees a difference.
    /// `address`, when given, is what named the instance (as its default id): the instance of
    /// that name must be at that address, or it is not the one meant.
    private mutating func withLiveInstance(service: String, id: String, address: String? = nil, now: Instant,
                                           _ change: (inout Registry, Int32) -> Bool) -> InstanceOutcome {
        if let violation = Violation.checkServiceName(service) ?? Violation.checkID(id) { return .invalid(violation) }
        switch findLiveInstance(service: service, id: id, now: now) {
        case .found(let slot):
            if let address, instances[Int(slot)].attributes.address != address { return .unknownInstance }
            return .done(changed: change(&self, slot))
        case .noService: return .unknownService
        case .noInstance: return .unknownInstance
        }
    }

    /// Adds a new instance (its key must be free) and, unless `journaling` is false (a
    /// recovery, which reads what the journal already holds), journals it.
    mutating func insert(service: String, id: String, attributes: InstanceAttributes, registeredAt: Instant, now: Instant,
                         journaling: Bool = true) {
        let serviceSlot = serviceSlots[service] ?? makeService(named: service)
        var record = InstanceRecord(id: id, attributes: attributes, service: serviceSlot,
                                    orderPosition: Int32(services[Int(serviceSlot)].order.count),
                                    registeredAt: registeredAt.nanoseconds)
        record.lastHeartbeat = now.nanoseconds
        record.deadline = deadline(of: record, from: now)
        let slot = Self.place(record, in: &instances, reusing: &freeInstanceSlots)
        instanceSlots[InstanceKey(service: serviceSlot, id: id)] = slot
        deadlines.insert(slot, key: record.deadline)
        services[Int(serviceSlot)].add(record, slot: slot)
        noteChange(ofInstance: slot)
        if journaling { journalUpsert(slot, prior: nil) }
    }

    /// Gives an instance new attributes. Returns its state before when anything changed;
    /// nil when nothing did (a heartbeat).
    mutating func update(_ slot: Int32, to attributes: InstanceAttributes) -> InstanceRecord? {
        let before = instances[Int(slot)]
        guard before.attributes != attributes else { return nil }
        instances[Int(slot)].attributes = attributes
        instances[Int(slot)].customTTL = InstanceRecord.customTTL(of: attributes)
        services[Int(before.service)].replace(before.attributes, with: attributes)
        return before
    }

    /// After `update` and `renew`: notes a visible change, journals it, and lifts the
    /// service's protection when the instance was one it kept.
    mutating func finishChange(of slot: Int32, prior: InstanceRecord?, unprotected: Bool, now: Instant) {
        if prior != nil || unprotected { noteChange(ofInstance: slot) }
        if let prior { journalUpsert(slot, prior: prior) }
        if unprotected { liftProtection(ofService: instances[Int(slot)].service, now: now) }
    }

    /// When an instance heartbeating at `now` is next due.
    func deadline(of instance: InstanceRecord, from now: Instant) -> Int64 {
        if instance.customTTL == InstanceRecord.neverExpires { return .max }
        return now.nanoseconds &+ (instance.customTTL > 0 ? instance.customTTL : defaultTTLNanos) &+ graceNanos
    }

    /// Counts a heartbeat. Returns true when the instance was under protection and no
    /// longer is: a visible change, and the sign that its service's cut is over.
    mutating func renew(_ slot: Int32, now: Instant) -> Bool {
        let instance = instances[Int(slot)]
        let deadline = deadline(of: instance, from: now)
        instances[Int(slot)].lastHeartbeat = now.nanoseconds
        instances[Int(slot)].deadline = deadline
        let serviceSlot = Int(instance.service)
        services[serviceSlot].earliestDeadline = min(services[serviceSlot].earliestDeadline, deadline)
        if instance.isProtected {
            instances[Int(slot)].isProtected = false
            services[serviceSlot].protectedCount -= 1
            deadlines.insert(slot, key: deadline)
            return true
        }
        // The index keeps its older key while it is a valid lower bound (see DeadlineHeap);
        // only a shorter TTL can bring the deadline before it.
        if deadline < deadlines.key(of: slot) { deadlines.update(slot, key: deadline) }
        return false
    }

    /// Stores `record` in a free slot of `array`, or a new one at its end.
    private static func place<Record>(_ record: Record, in array: inout [Record], reusing free: inout [Int32]) -> Int32 {
        if let slot = free.popLast() {
            array[Int(slot)] = record
            return slot
        }
        array.append(record)
        return Int32(array.count - 1)
    }

    mutating func makeService(named name: String) -> Int32 {
        let record = ServiceRecord(name: name)
        let slot = Self.place(record, in: &services, reusing: &freeServiceSlots)
        serviceSlots[name] = slot
        return slot
    }

    /// A visible change of one instance: its service changes, and the instance's version
    /// records the index, so that readers can re-render only the instances that changed.
    /// In a mirror, only a committed change (`applyCommitted`) is a visible change, and it
    /// carries the store's revision: what the registry does on its own there (protection) is
    /// soft state and moves no index.
    mutating func noteChange(ofInstance slot: Int32) {
        if policy.mirrored && applyingRevision == nil { return }
        noteChange(ofService: instances[Int(slot)].service)
        instances[Int(slot)].version = changeIndex
    }

    mutating func noteChange(ofService serviceSlot: Int32) {
        if policy.mirrored {
            guard let revision = applyingRevision else { return }
            changeIndex = max(changeIndex, revision)
        } else {
            changeIndex += 1
        }
        services[Int(serviceSlot)].changeIndex = changeIndex
        if !services[Int(serviceSlot)].awaitingNotice {
            services[Int(serviceSlot)].awaitingNotice = true
            changedServices.append(services[Int(serviceSlot)].name)
        }
    }

    /// Removes an instance, and its service when it was the last one; one visible change.
    mutating func remove(_ slot: Int32, expired: Bool = false) {
        let instance = instances[Int(slot)]
        let serviceSlot = Int(instance.service)
        noteChange(ofService: instance.service)
        if policy.journaling {
            journal.append(JournalChange(.remove(service: services[serviceSlot].name, id: instance.id, changeIndex: changeIndex),
                                         prior: state(of: instance), isExpiry: expired))
        }
        if instance.isExpiring { services[serviceSlot].expiringCount -= 1 }
        if instance.isProtected {
            services[serviceSlot].protectedCount -= 1
        } else if deadlines.contains(slot) {
            // (Not there for a mirror's instance whose expiry is proposed.)
            deadlines.remove(slot)
        }
        instanceSlots[InstanceKey(service: instance.service, id: instance.id)] = nil
        instances[Int(slot)] = InstanceRecord.vacant
        freeInstanceSlots.append(slot)

        let moved = services[serviceSlot].remove(instance, at: instance.orderPosition)
        for (movedSlot, position) in moved {
            instances[Int(movedSlot)].orderPosition = position
        }
        if services[serviceSlot].liveCount == 0 {
            serviceSlots[services[serviceSlot].name] = nil
            services[serviceSlot] = ServiceRecord(name: "")
            freeServiceSlots.append(Int32(serviceSlot))
        }
    }
}
