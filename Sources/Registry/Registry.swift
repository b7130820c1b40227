/// The registry: services, their instances and their heartbeat deadlines, as a pure
/// single-threaded state machine.
///
/// Every method that depends on time takes `now`; nothing here reads a clock, does I/O or
/// locks. An instance is gone at its deadline (`lastHeartbeat + ttl`) whether or not the
/// expiry cycle has run yet: every read and write checks deadlines first (lazy expiry, as
/// Redis does on key access), and `expireDue(now:limit:)` removes the rest in bounded
/// batches (active expiry).
///
/// What the caller must act on comes out of two queues: `takeEvents()` (expiries and
/// protection changes, to log) and `takeChangedServices()` (services whose visible state
/// changed, to wake their watchers).
///
/// **Expiry protection** (off unless `policy.expiryProtection` is set to a share `r`): an
/// overdue instance is expired only if, counting it, no more than `r` of its service's
/// instances expired within the last heartbeat timeout. Otherwise the service enters
/// protection: its overdue instances stay listed, marked protected, and none expires until a
/// protected instance heartbeats again (the cut is over). Then protection lifts and the
/// instances still overdue are judged afresh. The price: while protection holds, instances
/// that really died stay listed (marked protected) until heartbeats return or they are
/// deregistered — including the only instance of a one-instance service.
public struct Registry: Sendable {
    public let policy: RegistryPolicy
    private let defaultTTLNanos: Int64

    private var serviceSlots: [String: Int32] = [:]
    private var services: [ServiceRecord] = []
    private var freeServiceSlots: [Int32] = []

    private var instanceSlots: [InstanceKey: Int32] = [:]
    private var instances: [InstanceRecord] = []
    private var freeInstanceSlots: [Int32] = []

    /// Every instance not under protection, keyed by a lower bound of its deadline.
    private var deadlines = DeadlineHeap()
    private var events: [RegistryEvent] = []
    private var changedServices: [String] = []
    private var journal: [JournalChange] = []

    /// Starts at 1 and grows by one for every change a reader can see: an instance added,
    /// removed or expired, or any field of one changed. Heartbeats alone do not move it.
    public private(set) var changeIndex: UInt64 = 1

    public init(policy: RegistryPolicy) {
        precondition(policy.heartbeatTimeout > .zero, "the heartbeat timeout must be positive")
        precondition(policy.minimumTTL > .zero && policy.minimumTTL <= policy.maximumTTL, "invalid TTL bounds")
        self.policy = policy
        self.defaultTTLNanos = policy.heartbeatTimeout.wholeNanoseconds
    }

    public init(heartbeatTimeout: Duration) {
        self.init(policy: RegistryPolicy(heartbeatTimeout: heartbeatTimeout))
    }

    public var heartbeatTimeout: Duration { policy.heartbeatTimeout }

    /// Instances held, including any whose deadline passed and that no read or expiry
    /// cycle has removed yet.
    public var instanceCount: Int { instanceSlots.count }
    public var serviceCount: Int { serviceSlots.count }
    /// Every service with an instance, due or not, in no particular order.
    public var serviceNames: [String] { Array(serviceSlots.keys) }

    /// The earliest moment at which some instance may be due. It can be earlier than any
    /// real deadline (heartbeats move deadlines without touching the index), never later.
    public var nextDeadline: Instant? {
        deadlines.top.map { Instant(nanoseconds: $0.key) }
    }

    // MARK: Writes

    /// Registers an instance, or updates it and counts a heartbeat when `service` already
    /// has an instance with this id. The id defaults to the address.
    public mutating func register(service: String, id: String? = nil, address: String,
                                  fields: InstanceFields = InstanceFields(), now: Instant) -> RegisterOutcome {
        if let violation = Violation.checkServiceName(service) ?? Violation.checkAddress(address)
            ?? id.flatMap(Violation.checkID) ?? check(fields) {
            return .invalid(violation)
        }
        let id = id ?? address
        if case .found(let slot) = findLiveInstance(service: service, id: id, now: now) {
            let before = update(slot, address: address, fields: fields)
            let changed = before != nil
            let unprotected = renew(slot, now: now)
            if changed || unprotected { noteChange(ofInstance: slot) }
            if let before { journalUpsert(slot, prior: before) }
            if unprotected { liftProtection(ofService: instances[Int(slot)].service, now: now) }
            return .updated(changed: changed || unprotected)
        }
        insert(service: service, id: id, address: address, fields: fields, registeredAt: now, now: now)
        return .registered
    }

    /// Adds a new instance (its key must be free) and, unless `journaling` is false (a
    /// recovery, which reads what the journal already holds), journals it.
    private mutating func insert(service: String, id: String, address: String, fields: InstanceFields,
                                 registeredAt: Instant, now: Instant, journaling: Bool = true) {
        let serviceSlot = serviceSlots[service] ?? makeService(named: service)
        let customTTL = fields.ttl.map(ttlNanoseconds) ?? 0
        let deadline = now.nanoseconds &+ (customTTL > 0 ? customTTL : defaultTTLNanos)
        let record = InstanceRecord(
            id: id, address: address, tags: fields.tags ?? [], metadata: fields.metadata ?? [],
            zone: fields.zone.flatMap { $0 }, service: serviceSlot,
            orderPosition: Int32(services[Int(serviceSlot)].order.count),
            weight: Int32(fields.weight ?? InstanceFields.defaultWeight), status: fields.status ?? .up,
            isProtected: false, customTTL: customTTL,
            registeredAt: registeredAt.nanoseconds, lastHeartbeat: now.nanoseconds, deadline: deadline)
        let slot: Int32
        if let free = freeInstanceSlots.popLast() {
            slot = free
            instances[Int(slot)] = record
        } else {
            slot = Int32(instances.count)
            instances.append(record)
        }
        instanceSlots[InstanceKey(service: serviceSlot, id: id)] = slot
        deadlines.insert(slot, key: deadline)
        services[Int(serviceSlot)].add(record, slot: slot)
        noteChange(ofInstance: slot)
        if journaling { journalUpsert(slot, prior: nil) }
    }

    /// Moves the instance's deadline to `now + ttl`; with `status`, also sets its status.
    public mutating func heartbeat(service: String, id: String, status: InstanceStatus? = nil, now: Instant) -> InstanceOutcome {
        if let violation = Violation.checkServiceName(service) ?? Violation.checkID(id) { return .invalid(violation) }
        switch findLiveInstance(service: service, id: id, now: now) {
        case .found(let slot):
            let serviceSlot = instances[Int(slot)].service
            let before = status.flatMap { setStatus(slot, $0) }
            let changed = before != nil
            let unprotected = renew(slot, now: now)
            if changed || unprotected { noteChange(ofInstance: slot) }
            if let before { journalUpsert(slot, prior: before) }
            if unprotected { liftProtection(ofService: serviceSlot, now: now) }
            return .done(changed: changed || unprotected)
        case .noService: return .unknownService
        case .noInstance: return .unknownInstance
        }
    }

    /// Sets the instance's status without counting a heartbeat (an operator may set it).
    public mutating func setStatus(service: String, id: String, status: InstanceStatus, now: Instant) -> InstanceOutcome {
        if let violation = Violation.checkServiceName(service) ?? Violation.checkID(id) { return .invalid(violation) }
        switch findLiveInstance(service: service, id: id, now: now) {
        case .found(let slot):
            guard let before = setStatus(slot, status) else { return .done(changed: false) }
            noteChange(ofInstance: slot)
            journalUpsert(slot, prior: before)
            return .done(changed: true)
        case .noService: return .unknownService
        case .noInstance: return .unknownInstance
        }
    }

    public mutating func deregister(service: String, id: String, now: Instant) -> InstanceOutcome {
        if let violation = Violation.checkServiceName(service) ?? Violation.checkID(id) { return .invalid(violation) }
        switch findLiveInstance(service: service, id: id, now: now) {
        case .found(let slot):
            remove(slot)
            return .done(changed: true)
        case .noService: return .unknownService
        case .noInstance: return .unknownInstance
        }
    }

    /// Removes instances whose deadline is at or before `now` (or puts them under
    /// protection), visiting at most `limit` index entries, so that one call's work is
    /// bounded however many are due.
    public mutating func expireDue(now: Instant, limit: Int) -> ExpiryProgress {
        var visited = 0
        var expired = 0
        while let (slot, key) = deadlines.top, key <= now.nanoseconds {
            if visited == limit { return ExpiryProgress(expired: expired, moreDue: true) }
            visited += 1
            let deadline = instances[Int(slot)].deadline
            if deadline <= now.nanoseconds {
                if expireOrProtect(slot, now: now) { expired += 1 }
            } else {
                // A stale key left behind by heartbeats: re-key it to the real deadline.
                deadlines.update(slot, key: deadline)
            }
        }
        return ExpiryProgress(expired: expired, moreDue: false)
    }

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

    /// Returns the durable changes since the last call, in order (only with
    /// `policy.journaling`), and forgets them.
    public mutating func takeJournal() -> [JournalChange] {
        guard !journal.isEmpty else { return [] }
        defer { journal.removeAll(keepingCapacity: true) }
        return journal
    }

    /// Makes room for `count` instances in all, ahead of a recovery.
    public mutating func reserveCapacity(instances count: Int) {
        instanceSlots.reserveCapacity(count)
        instances.reserveCapacity(count)
    }

    /// Durable changes made since the last `takeJournal()`.
    public var pendingJournalCount: Int { journal.count }

    /// Takes back `changes` (taken from `takeJournal()` and not yet durable), newest first,
    /// so that every instance they touched is as it was before them. Each undo is a
    /// visible change (readers may have seen what is taken back), so the change index
    /// moves on and watchers are told; nothing is journaled, because the durable state
    /// never held the changes. An instance put back gets a full TTL from `now`.
    ///
    /// Expiries are not taken back: no client asked for them, and putting a dead instance
    /// back with a fresh TTL on every failed write would keep it in discovery for as long as
    /// the disk fails. The caller keeps their records and writes them later.
    public mutating func revert(_ changes: [JournalChange], now: Instant) {
        let pendingEvents = events
        for change in changes.reversed() where !change.isExpiry {
            switch change.entry {
            case .upsert(let state, _):
                if let prior = change.prior {
                    restoreInstance(prior, now: now)
                } else {
                    removeIfPresent(service: state.service, id: state.id)
                }
            case .remove:
                if let prior = change.prior { restoreInstance(prior, now: now) }
            case .indexAdvanced:
                break
            }
        }
        journal.removeAll(keepingCapacity: true)
        events = pendingEvents
    }

    // MARK: Restoring

    /// Puts back one entry of a journal or snapshot, as part of recovery: without events,
    /// journal entries or change notices. A restored instance's TTL starts at `now`, the
    /// moment the registry is about to serve again. Returns the rule an upsert breaks,
    /// if any (the entry is then skipped).
    @discardableResult
    public mutating func restore(_ entry: JournalEntry, now: Instant) -> Violation? {
        var violation: Violation?
        switch entry {
        case .remove(let service, let id, _):
            removeIfPresent(service: service, id: id)
        case .upsert(let state, _):
            violation = restoreInstance(state, now: now)
        case .indexAdvanced:
            break
        }
        changeIndex = max(changeIndex, entry.changeIndex)
        journal.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
        return violation
    }

    /// Ends a recovery: the change index moves on from where the stored one stopped, every
    /// service counts as changed at it (watchers of the old process start over), and no
    /// notices are pending. Every instance's TTL restarts at `now`, the moment the registry
    /// serves again, however long the recovery took.
    public mutating func finishRestore(changeIndex restored: UInt64, now: Instant) {
        changeIndex = max(changeIndex, restored) + 1
        deadlines = DeadlineHeap()
        // Through each service's order (an array walk) rather than the instance dictionary.
        for serviceSlot in services.indices where services[serviceSlot].liveCount > 0 {
            for slot in services[serviceSlot].order where slot >= 0 {
                let customTTL = instances[Int(slot)].customTTL
                let deadline = now.nanoseconds &+ (customTTL > 0 ? customTTL : defaultTTLNanos)
                instances[Int(slot)].lastHeartbeat = now.nanoseconds
                instances[Int(slot)].deadline = deadline
                deadlines.insert(slot, key: deadline)
            }
        }
        for slot in serviceSlots.values {
            services[Int(slot)].changeIndex = changeIndex
            services[Int(slot)].awaitingNotice = false
            services[Int(slot)].earliestDeadline = now.nanoseconds &+ min(defaultTTLNanos, policy.minimumTTL.wholeNanoseconds)
        }
        changedServices.removeAll()
        journal.removeAll()
        events.removeAll()
    }

    /// The durable state of every instance.
    public func durableState() -> [InstanceState] {
        durableStates(inSlots: 0..<slotCount)
    }

    /// Instances live in slots `0..<slotCount`; a snapshot taken in steps walks them in ranges.
    public var slotCount: Int { instances.count }

    /// The durable state of the instances in `range` of slots (empty slots are skipped).
    public func durableStates(inSlots range: Range<Int>) -> [InstanceState] {
        var result: [InstanceState] = []
        result.reserveCapacity(range.count)
        for slot in range.clamped(to: 0..<instances.count) where instances[slot].service >= 0 {
            result.append(state(of: instances[slot]))
        }
        return result
    }

    // MARK: Reads

    /// The change index of the service's last visible change, after expiring its due
    /// instances; nil when the service has no instance.
    ///
    /// Cheap when nothing in the service can be due: one dictionary lookup and a compare.
    public mutating func serviceChangeIndex(_ service: String, now: Instant) -> UInt64? {
        guard let serviceSlot = serviceSlots[service] else { return nil }
        if now.nanoseconds >= services[Int(serviceSlot)].earliestDeadline {
            expireDueInstances(ofService: serviceSlot, now: now)
            guard serviceSlots[service] != nil else { return nil }
        }
        return services[Int(serviceSlot)].changeIndex
    }

    /// Instances by status across every service (overdue ones not yet removed included).
    public var instanceCountsByStatus: [InstanceStatus: Int] {
        var totals: [InstanceStatus: Int] = [:]
        for slot in serviceSlots.values {
            for status in InstanceStatus.allCases { totals[status, default: 0] += services[Int(slot)].statusCounts[status] }
        }
        return totals
    }

    /// Whether the service has instances, due or not.
    public func contains(service: String) -> Bool {
        serviceSlots[service] != nil
    }

    /// The service's instances in registration order, exactly as stored. Call
    /// `serviceChangeIndex(_:now:)` first in the same turn so that none of them is due.
    public func instances(ofService service: String) -> [InstanceSnapshot] {
        guard let serviceSlot = serviceSlots[service] else { return [] }
        let record = services[Int(serviceSlot)]
        var result: [InstanceSnapshot] = []
        result.reserveCapacity(record.liveCount)
        for slot in record.order where slot >= 0 {
            result.append(snapshot(of: instances[Int(slot)]))
        }
        return result
    }

    private func snapshot(of instance: InstanceRecord) -> InstanceSnapshot {
        InstanceSnapshot(
            id: instance.id, address: instance.address, tags: instance.tags, metadata: instance.metadata,
            weight: Int(instance.weight), zone: instance.zone, status: instance.status,
            registeredAt: Instant(nanoseconds: instance.registeredAt),
            lastHeartbeat: Instant(nanoseconds: instance.lastHeartbeat),
            deadline: Instant(nanoseconds: instance.deadline),
            ttl: .nanoseconds(instance.customTTL > 0 ? instance.customTTL : defaultTTLNanos),
            isProtected: instance.isProtected)
    }

    /// The slot and version of each of the service's instances, in registration order: what
    /// a reader compares with what it rendered before, to re-render only what changed (see
    /// `instance(inSlot:)`). Same precondition as `instances(ofService:)`.
    public func instanceVersions(ofService service: String) -> [(slot: Int32, version: UInt64)] {
        guard let serviceSlot = serviceSlots[service] else { return [] }
        var result: [(slot: Int32, version: UInt64)] = []
        result.reserveCapacity(services[Int(serviceSlot)].liveCount)
        for slot in services[Int(serviceSlot)].order where slot >= 0 {
            result.append((slot, instances[Int(slot)].version))
        }
        return result
    }

    /// The instance in `slot`, as `instances(ofService:)` lists it. `slot` must come from
    /// `instanceVersions(ofService:)` in the same turn.
    public func instance(inSlot slot: Int32) -> InstanceSnapshot {
        snapshot(of: instances[Int(slot)])
    }

    /// The last heartbeat of each of the service's instances, in the order of
    /// `instances(ofService:)`: what changes between change indexes without moving them.
    public func lastHeartbeats(ofService service: String) -> [Instant] {
        guard let serviceSlot = serviceSlots[service] else { return [] }
        var result: [Instant] = []
        result.reserveCapacity(services[Int(serviceSlot)].liveCount)
        for slot in services[Int(serviceSlot)].order where slot >= 0 {
            result.append(Instant(nanoseconds: instances[Int(slot)].lastHeartbeat))
        }
        return result
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

    /// One service's summary as stored, less `leavingOut` (its due instances, by status); nil
    /// when nothing is left.
    public func summary(ofService name: String, leavingOut due: [InstanceStatus: Int]? = nil) -> ServiceSummary? {
        guard let slot = serviceSlots[name] else { return nil }
        let record = services[Int(slot)]
        var counts = record.statusCounts.nonZero
        if let due {
            for (status, count) in due { counts[status, default: 0] -= count }
            counts = counts.filter { $0.value > 0 }
        }
        let live = counts.values.reduce(0, +)
        guard live > 0 else { return nil }
        return ServiceSummary(name: name, instanceCount: live, countsByStatus: counts,
                              tags: record.tagCounts.keys.sorted(), changeIndex: record.changeIndex)
    }

    /// Instances whose deadline has passed but that no read or expiry has removed yet, by
    /// service and status. Costs what is due (the index is walked up to `now` only).
    public func dueInstanceCounts(now: Instant) -> [String: [InstanceStatus: Int]] {
        var due: [String: [InstanceStatus: Int]] = [:]
        deadlines.forEach(keyAtMost: now.nanoseconds) { slot in
            let instance = instances[Int(slot)]
            if instance.deadline <= now.nanoseconds {
                due[services[Int(instance.service)].name, default: [:]][instance.status, default: 0] += 1
            }
        }
        return due
    }

    // MARK: Internals

    private func check(_ fields: InstanceFields) -> Violation? {
        if let tags = fields.tags, let violation = Violation.checkTags(tags) { return violation }
        if let metadata = fields.metadata, let violation = Violation.checkMetadata(metadata) { return violation }
        if let weight = fields.weight, let violation = Violation.checkWeight(weight) { return violation }
        if let zone = fields.zone.flatMap({ $0 }), let violation = Violation.checkZone(zone) { return violation }
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

    /// The nanoseconds a checked TTL request stands for; 0 means the server's timeout.
    /// Only called after `check(_:)`, so the seconds are within the policy's bounds (at most
    /// days) and the conversion cannot overflow.
    private func ttlNanoseconds(_ request: TTLRequest) -> Int64 {
        switch request {
        case .serverDefault: return 0
        case .seconds(let seconds): return Int64((seconds * 1e9).rounded())
        }
    }

    private enum InstanceLookup {
        case found(Int32)
        case noService
        case noInstance
    }

    /// Finds a registered instance that is not overdue. One found past its deadline is
    /// expired here (or protected, and then found), so no caller ever sees or renews an
    /// expired instance; if it was its service's last, the answer is `noService`.
    private mutating func findLiveInstance(service: String, id: String, now: Instant) -> InstanceLookup {
        guard let serviceSlot = serviceSlots[service] else { return .noService }
        guard let slot = instanceSlots[InstanceKey(service: serviceSlot, id: id)] else { return .noInstance }
        let instance = instances[Int(slot)]
        if !instance.isProtected && instance.deadline <= now.nanoseconds {
            if expireOrProtect(slot, now: now) {
                return serviceSlots[service] == nil ? .noService : .noInstance
            }
        }
        return .found(slot)
    }

    /// Applies a registration's fields to an existing instance. Returns its state before,
    /// when any field changed; nil when none did.
    private mutating func update(_ slot: Int32, address: String, fields: InstanceFields) -> InstanceRecord? {
        var record = instances[Int(slot)]
        let before = record
        record.address = address
        if let tags = fields.tags { record.tags = tags }
        if let metadata = fields.metadata { record.metadata = metadata }
        if let weight = fields.weight { record.weight = Int32(weight) }
        if let zone = fields.zone { record.zone = zone }
        if let status = fields.status { record.status = status }
        if let ttl = fields.ttl { record.customTTL = ttlNanoseconds(ttl) }
        guard !record.sameVisibleFields(as: before) else { return nil }
        instances[Int(slot)] = record
        services[Int(record.service)].replace(before, with: record)
        return before
    }

    /// Sets an instance's status. Returns its state before, when the status changed.
    private mutating func setStatus(_ slot: Int32, _ status: InstanceStatus) -> InstanceRecord? {
        let before = instances[Int(slot)]
        guard before.status != status else { return nil }
        instances[Int(slot)].status = status
        services[Int(before.service)].replace(before, with: instances[Int(slot)])
        return before
    }

    /// Counts a heartbeat. Returns true when the instance was under protection and no
    /// longer is: a visible change, and the sign that its service's cut is over.
    private mutating func renew(_ slot: Int32, now: Instant) -> Bool {
        let instance = instances[Int(slot)]
        let deadline = now.nanoseconds &+ (instance.customTTL > 0 ? instance.customTTL : defaultTTLNanos)
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

    private mutating func journalUpsert(_ slot: Int32, prior: InstanceRecord?) {
        guard policy.journaling else { return }
        journal.append(JournalChange(.upsert(state(of: instances[Int(slot)]), changeIndex: changeIndex),
                                     prior: prior.map { state(of: $0) }))
    }

    /// Registers `state` as an instance with all its durable fields, or brings an existing
    /// instance back to it; its TTL runs from `now`.
    @discardableResult
    private mutating func restoreInstance(_ state: InstanceState, now: Instant) -> Violation? {
        let fields = InstanceFields(tags: state.tags, metadata: state.metadata, weight: state.weight, zone: .some(state.zone),
                                    status: state.status, ttl: state.ttl.map(TTLRequest.duration) ?? .serverDefault)
        let isNew = serviceSlots[state.service].map { instanceSlots[InstanceKey(service: $0, id: state.id)] == nil } ?? true
        if isNew {
            // The common case of a recovery, taken directly: the rules, then one insert.
            if let violation = Violation.checkServiceName(state.service) ?? Violation.checkAddress(state.address)
                ?? Violation.checkID(state.id) ?? check(fields) {
                return violation
            }
            insert(service: state.service, id: state.id, address: state.address, fields: fields,
                   registeredAt: state.registeredAt, now: now, journaling: false)
            return nil
        }
        if case .invalid(let violation) = register(service: state.service, id: state.id, address: state.address,
                                                   fields: fields, now: now) {
            return violation
        }
        if let serviceSlot = serviceSlots[state.service], let slot = instanceSlots[InstanceKey(service: serviceSlot, id: state.id)] {
            instances[Int(slot)].registeredAt = state.registeredAt.nanoseconds
        }
        return nil
    }

    private mutating func removeIfPresent(service: String, id: String) {
        if let serviceSlot = serviceSlots[service], let slot = instanceSlots[InstanceKey(service: serviceSlot, id: id)] {
            remove(slot)
        }
    }

    private func state(of instance: InstanceRecord) -> InstanceState {
        InstanceState(
            service: services[Int(instance.service)].name, id: instance.id, address: instance.address, tags: instance.tags,
            metadata: instance.metadata, weight: Int(instance.weight), zone: instance.zone, status: instance.status,
            ttl: instance.customTTL > 0 ? .nanoseconds(instance.customTTL) : nil,
            registeredAt: Instant(nanoseconds: instance.registeredAt))
    }

    private mutating func makeService(named name: String) -> Int32 {
        let record = ServiceRecord(name: name)
        let slot: Int32
        if let free = freeServiceSlots.popLast() {
            slot = free
            services[Int(slot)] = record
        } else {
            slot = Int32(services.count)
            services.append(record)
        }
        serviceSlots[name] = slot
        return slot
    }

    /// A visible change of one instance: its service changes, and the instance's version
    /// records the index, so that readers can re-render only the instances that changed.
    private mutating func noteChange(ofInstance slot: Int32) {
        noteChange(ofService: instances[Int(slot)].service)
        instances[Int(slot)].version = changeIndex
    }

    private mutating func noteChange(ofService serviceSlot: Int32) {
        changeIndex += 1
        services[Int(serviceSlot)].changeIndex = changeIndex
        if !services[Int(serviceSlot)].awaitingNotice {
            services[Int(serviceSlot)].awaitingNotice = true
            changedServices.append(services[Int(serviceSlot)].name)
        }
    }

    private mutating func expireDueInstances(ofService serviceSlot: Int32, now: Instant) {
        var earliest = Int64.max
        var due: [Int32] = []
        for slot in services[Int(serviceSlot)].order where slot >= 0 {
            let instance = instances[Int(slot)]
            if instance.isProtected { continue }
            if instance.deadline <= now.nanoseconds { due.append(slot) } else { earliest = min(earliest, instance.deadline) }
        }
        for slot in due { _ = expireOrProtect(slot, now: now) }
        if services[Int(serviceSlot)].liveCount == 0 { return }
        services[Int(serviceSlot)].earliestDeadline = earliest
    }

    /// Expires an overdue instance, unless expiry protection keeps it. Returns true when
    /// the instance was removed.
    private mutating func expireOrProtect(_ slot: Int32, now: Instant) -> Bool {
        let serviceSlot = Int(instances[Int(slot)].service)
        guard let share = policy.expiryProtection else {
            expire(slot, now: now)
            return true
        }
        let windowStart = now.nanoseconds &- defaultTTLNanos
        services[serviceSlot].recentExpiries.removeAll { $0 <= windowStart }
        let recent = services[serviceSlot].recentExpiries.count
        let total = services[serviceSlot].liveCount + recent
        if services[serviceSlot].isProtected || Double(recent + 1) > share * Double(total) {
            if !services[serviceSlot].isProtected {
                services[serviceSlot].isProtected = true
                events.append(.protectionStarted(service: services[serviceSlot].name, overdue: recent + 1, instances: total))
            }
            instances[Int(slot)].isProtected = true
            services[serviceSlot].protectedCount += 1
            deadlines.remove(slot)
            noteChange(ofInstance: slot)
            return false
        }
        services[serviceSlot].recentExpiries.append(now.nanoseconds)
        expire(slot, now: now)
        return true
    }

    /// A protected instance heartbeated: the cut is over. The service's instances still
    /// overdue go back to the index, due now, to be judged afresh against an empty window.
    private mutating func liftProtection(ofService serviceSlot: Int32, now: Instant) {
        guard services[Int(serviceSlot)].isProtected else { return }
        services[Int(serviceSlot)].isProtected = false
        services[Int(serviceSlot)].recentExpiries.removeAll()
        events.append(.protectionLifted(service: services[Int(serviceSlot)].name))
        noteChange(ofService: serviceSlot)
        for slot in services[Int(serviceSlot)].order where slot >= 0 && instances[Int(slot)].isProtected {
            instances[Int(slot)].isProtected = false
            instances[Int(slot)].version = changeIndex
            deadlines.insert(slot, key: now.nanoseconds)
        }
        services[Int(serviceSlot)].protectedCount = 0
        services[Int(serviceSlot)].earliestDeadline = now.nanoseconds
    }

    private mutating func expire(_ slot: Int32, now: Instant) {
        let instance = instances[Int(slot)]
        events.append(.expired(service: services[Int(instance.service)].name, id: instance.id,
                               address: instance.address, lastHeartbeat: Instant(nanoseconds: instance.lastHeartbeat)))
        remove(slot, expired: true)
    }

    /// Removes an instance, and its service when it was the last one; one visible change.
    private mutating func remove(_ slot: Int32, expired: Bool = false) {
        let instance = instances[Int(slot)]
        let serviceSlot = Int(instance.service)
        noteChange(ofService: instance.service)
        if policy.journaling {
            journal.append(JournalChange(.remove(service: services[serviceSlot].name, id: instance.id, changeIndex: changeIndex),
                                         prior: state(of: instance), isExpiry: expired))
        }
        if instance.isProtected {
            services[serviceSlot].protectedCount -= 1
        } else {
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

/// An instance's identity: its service's slot and its id.
private struct InstanceKey: Hashable {
    var service: Int32
    var id: String
}

/// One instance, stored in a slot of `Registry.instances`. Times are monotonic nanoseconds.
private struct InstanceRecord {
    var id: String
    var address: String
    var tags: [String]
    var metadata: [(key: String, value: String)]
    var zone: String?
    var service: Int32
    /// Index in the service's `order` array.
    var orderPosition: Int32
    var weight: Int32
    var status: InstanceStatus
    /// Kept past its deadline by expiry protection; such an instance is not in the index.
    var isProtected: Bool
    /// This instance's own heartbeat timeout in nanoseconds; 0 means the server's.
    var customTTL: Int64
    var registeredAt: Int64
    var lastHeartbeat: Int64
    var deadline: Int64
    /// The change index of this instance's last visible change.
    var version: UInt64 = 0

    static let vacant = InstanceRecord(
        id: "", address: "", tags: [], metadata: [], zone: nil, service: -1, orderPosition: -1, weight: 0,
        status: .up, isProtected: false, customTTL: 0, registeredAt: 0, lastHeartbeat: 0, deadline: 0)

    func sameVisibleFields(as other: InstanceRecord) -> Bool {
        address == other.address && tags == other.tags && weight == other.weight && zone == other.zone
            && status == other.status && customTTL == other.customTTL
            && sameMetadata(metadata, other.metadata)
    }
}

/// One service: its instances in registration order and what readers need to cache it.
private struct ServiceRecord {
    let name: String
    /// Instance slots in registration order; -1 marks a removed one. Removal leaves a hole
    /// (O(1)) instead of shifting, and the holes are squeezed out once they outnumber the
    /// live entries, so that a mass expiry in a large service stays linear.
    var order: [Int32] = []
    var liveCount = 0
    var changeIndex: UInt64 = 0
    /// A lower bound of the earliest deadline among the instances: until `now` reaches it,
    /// no instance of this service can be due. Heartbeats only move deadlines later (or
    /// lower this bound themselves), so it stays valid without a scan.
    var earliestDeadline = Int64.max
    /// Kept up to date on every change so that `/services` costs no scan of instances.
    var statusCounts = StatusCounts()
    var tagCounts: [String: Int] = [:]
    var roundRobin: UInt64 = 0
    /// Already in `Registry.changedServices`.
    var awaitingNotice = false
    var isProtected = false
    var protectedCount = 0
    /// When instances of this service expired within the last heartbeat timeout.
    var recentExpiries: [Int64] = []

    init(name: String) {
        self.name = name
    }

    mutating func add(_ instance: InstanceRecord, slot: Int32) {
        order.append(slot)
        liveCount += 1
        earliestDeadline = min(earliestDeadline, instance.deadline)
        count(instance, by: 1)
    }

    mutating func replace(_ before: InstanceRecord, with after: InstanceRecord) {
        count(before, by: -1)
        count(after, by: 1)
    }

    private mutating func count(_ instance: InstanceRecord, by delta: Int) {
        statusCounts[instance.status] += delta
        for tag in instance.tags {
            let count = tagCounts[tag, default: 0] + delta
            tagCounts[tag] = count > 0 ? count : nil
        }
    }

    /// Empties `order[position]` and returns the slots whose position changed, if the
    /// holes were squeezed out.
    mutating func remove(_ instance: InstanceRecord, at position: Int32) -> [(slot: Int32, position: Int32)] {
        order[Int(position)] = -1
        liveCount -= 1
        count(instance, by: -1)
        let holes = order.count - liveCount
        guard holes > 16 && holes > liveCount else { return [] }
        var moved: [(slot: Int32, position: Int32)] = []
        moved.reserveCapacity(liveCount)
        var compacted: [Int32] = []
        compacted.reserveCapacity(liveCount)
        for slot in order where slot >= 0 {
            moved.append((slot, Int32(compacted.count)))
            compacted.append(slot)
        }
        order = compacted
        return moved
    }
}

/// Instances per status in four integers: a dictionary would hash on every change.
struct StatusCounts {
    private var up = 0
    private var starting = 0
    private var down = 0
    private var outOfService = 0

    subscript(status: InstanceStatus) -> Int {
        get {
            switch status {
            case .up: return up
            case .starting: return starting
            case .down: return down
            case .outOfService: return outOfService
            }
        }
        set {
            switch status {
            case .up: up = newValue
            case .starting: starting = newValue
            case .down: down = newValue
            case .outOfService: outOfService = newValue
            }
        }
    }

    var nonZero: [InstanceStatus: Int] {
        var result: [InstanceStatus: Int] = [:]
        for status in InstanceStatus.allCases where self[status] != 0 { result[status] = self[status] }
        return result
    }
}
