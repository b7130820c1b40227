/// The registry: services, their instances and their heartbeat deadlines, as a pure
/// single-threaded state machine.
///
/// Every method that depends on time takes `now`; nothing here reads a clock, does I/O or
/// locks. An instance is gone at its deadline (`lastHeartbeat + heartbeatTimeout`) whether or
/// not the expiry cycle has run yet: every read and write checks deadlines first (lazy
/// expiry, as Redis does on key access), and `expireDue(now:limit:)` removes the rest in
/// bounded batches (active expiry). Instances removed either way are queued for
/// `takeExpired()`, so that the caller can log them.
public struct Registry {
    public let heartbeatTimeout: Duration
    private let timeoutNanos: Int64

    private var serviceSlots: [String: Int32] = [:]
    private var services: [ServiceRecord] = []
    private var freeServiceSlots: [Int32] = []

    private var instanceSlots: [InstanceKey: Int32] = [:]
    private var instances: [InstanceRecord] = []
    private var freeInstanceSlots: [Int32] = []

    private var deadlines = DeadlineHeap()
    private var expiredQueue: [ExpiredInstance] = []

    /// Starts at 1 and grows by one for every change a reader can see: a new instance, a
    /// deregistration, an expiry. Heartbeats do not move it.
    public private(set) var changeIndex: UInt64 = 1

    public init(heartbeatTimeout: Duration) {
        precondition(heartbeatTimeout > .zero, "the heartbeat timeout must be positive")
        self.heartbeatTimeout = heartbeatTimeout
        self.timeoutNanos = heartbeatTimeout.wholeNanoseconds
    }

    /// Instances held, including any whose deadline passed and that no read or expiry
    /// cycle has removed yet.
    public var instanceCount: Int { instanceSlots.count }
    public var serviceCount: Int { serviceSlots.count }

    /// The earliest moment at which some instance may be due. It can be earlier than any
    /// real deadline (heartbeats move deadlines without touching the index), never later.
    public var nextDeadline: Instant? {
        deadlines.top.map { Instant(nanoseconds: $0.key) }
    }

    // MARK: Writes

    /// Registers `address` under `service`, or renews it when it is already registered.
    public mutating func register(service: String, address: String, now: Instant) -> RegisterOutcome {
        if let violation = NameViolation.checkServiceName(service) ?? NameViolation.checkAddress(address) {
            return .invalid(violation)
        }
        if case .found(let slot) = findLiveInstance(service: service, address: address, now: now) {
            renew(slot, now: now)
            return .updated
        }
        let serviceSlot = serviceSlots[service] ?? makeService(named: service)
        let deadline = now.nanoseconds &+ timeoutNanos
        changeIndex += 1
        let record = InstanceRecord(
            address: address, service: serviceSlot, orderPosition: Int32(services[Int(serviceSlot)].order.count),
            registeredAt: now.nanoseconds, lastHeartbeat: now.nanoseconds, deadline: deadline)
        let slot: Int32
        if let free = freeInstanceSlots.popLast() {
            slot = free
            instances[Int(slot)] = record
        } else {
            slot = Int32(instances.count)
            instances.append(record)
        }
        instanceSlots[InstanceKey(service: serviceSlot, address: address)] = slot
        deadlines.insert(slot, key: deadline)
        services[Int(serviceSlot)].add(slot, deadline: deadline, changeIndex: changeIndex)
        return .registered
    }

    /// Moves the instance's deadline to `now + heartbeatTimeout`.
    public mutating func heartbeat(service: String, address: String, now: Instant) -> HeartbeatOutcome {
        if let violation = NameViolation.checkServiceName(service) ?? NameViolation.checkAddress(address) {
            return .invalid(violation)
        }
        switch findLiveInstance(service: service, address: address, now: now) {
        case .found(let slot):
            renew(slot, now: now)
            return .renewed
        case .noService: return .unknownService
        case .noInstance: return .unknownInstance
        }
    }

    public mutating func deregister(service: String, address: String, now: Instant) -> DeregisterOutcome {
        if let violation = NameViolation.checkServiceName(service) ?? NameViolation.checkAddress(address) {
            return .invalid(violation)
        }
        switch findLiveInstance(service: service, address: address, now: now) {
        case .found(let slot):
            remove(slot)
            return .deregistered
        case .noService: return .unknownService
        case .noInstance: return .unknownInstance
        }
    }

    /// Removes instances whose deadline is at or before `now`, visiting at most `limit`
    /// index entries, so that one call's work is bounded however many are due.
    public mutating func expireDue(now: Instant, limit: Int) -> ExpiryProgress {
        var visited = 0
        var expired = 0
        while let (slot, key) = deadlines.top, key <= now.nanoseconds {
            if visited == limit { return ExpiryProgress(expired: expired, moreDue: true) }
            visited += 1
            let deadline = instances[Int(slot)].deadline
            if deadline <= now.nanoseconds {
                expire(slot)
                expired += 1
            } else {
                // A stale key left behind by heartbeats: re-key it to the real deadline.
                deadlines.update(slot, key: deadline)
            }
        }
        return ExpiryProgress(expired: expired, moreDue: false)
    }

    /// Returns the instances expired since the last call, oldest first, and forgets them.
    public mutating func takeExpired() -> [ExpiredInstance] {
        guard !expiredQueue.isEmpty else { return [] }
        defer { expiredQueue.removeAll(keepingCapacity: true) }
        return expiredQueue
    }

    // MARK: Reads

    /// The change index of the service's last visible change, after expiring its due
    /// instances; nil when the service has no live instance.
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
            let instance = instances[Int(slot)]
            result.append(InstanceSnapshot(
                address: instance.address,
                registeredAt: Instant(nanoseconds: instance.registeredAt),
                lastHeartbeat: Instant(nanoseconds: instance.lastHeartbeat),
                deadline: Instant(nanoseconds: instance.deadline)))
        }
        return result
    }

    /// Every service with at least one instance whose deadline is after `now`, sorted by
    /// name. Due instances are left out without being removed, so the work beyond the
    /// listing itself is proportional to the number of due instances.
    public func serviceSummaries(now: Instant) -> [ServiceSummary] {
        var dueCounts: [Int32: Int] = [:]
        deadlines.forEach(keyAtMost: now.nanoseconds) { slot in
            let instance = instances[Int(slot)]
            if instance.deadline <= now.nanoseconds {
                dueCounts[instance.service, default: 0] += 1
            }
        }
        var result: [ServiceSummary] = []
        result.reserveCapacity(serviceSlots.count)
        for (name, slot) in serviceSlots {
            let live = services[Int(slot)].liveCount - (dueCounts[slot] ?? 0)
            if live > 0 { result.append(ServiceSummary(name: name, instanceCount: live)) }
        }
        result.sort { $0.name < $1.name }
        return result
    }

    // MARK: Internals

    private enum InstanceLookup {
        case found(Int32)
        case noService
        case noInstance
    }

    /// Finds a registered instance whose deadline has not passed. An instance found past
    /// its deadline is expired here, so no caller ever sees or renews it; if it was its
    /// service's last, the answer is `noService`.
    private mutating func findLiveInstance(service: String, address: String, now: Instant) -> InstanceLookup {
        guard let serviceSlot = serviceSlots[service] else { return .noService }
        guard let slot = instanceSlots[InstanceKey(service: serviceSlot, address: address)] else { return .noInstance }
        if instances[Int(slot)].deadline <= now.nanoseconds {
            expire(slot)
            return serviceSlots[service] == nil ? .noService : .noInstance
        }
        return .found(slot)
    }

    private mutating func renew(_ slot: Int32, now: Instant) {
        instances[Int(slot)].lastHeartbeat = now.nanoseconds
        instances[Int(slot)].deadline = now.nanoseconds &+ timeoutNanos
        // The index keeps its older key, a valid lower bound; see DeadlineHeap.
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

    private mutating func expireDueInstances(ofService serviceSlot: Int32, now: Instant) {
        var earliest = Int64.max
        var due: [Int32] = []
        for slot in services[Int(serviceSlot)].order where slot >= 0 {
            let deadline = instances[Int(slot)].deadline
            if deadline <= now.nanoseconds { due.append(slot) } else { earliest = min(earliest, deadline) }
        }
        for slot in due { expire(slot) }
        if !due.isEmpty && services[Int(serviceSlot)].liveCount == 0 { return }
        services[Int(serviceSlot)].earliestDeadline = earliest
    }

    private mutating func expire(_ slot: Int32) {
        let instance = instances[Int(slot)]
        expiredQueue.append(ExpiredInstance(
            service: services[Int(instance.service)].name, address: instance.address,
            lastHeartbeat: Instant(nanoseconds: instance.lastHeartbeat),
            deadline: Instant(nanoseconds: instance.deadline)))
        remove(slot)
    }

    /// Removes an instance, and its service when it was the last one; one visible change.
    private mutating func remove(_ slot: Int32) {
        let instance = instances[Int(slot)]
        changeIndex += 1
        deadlines.remove(slot)
        instanceSlots[InstanceKey(service: instance.service, address: instance.address)] = nil
        instances[Int(slot)] = InstanceRecord.vacant
        freeInstanceSlots.append(slot)

        let serviceSlot = Int(instance.service)
        let moved = services[serviceSlot].remove(at: instance.orderPosition, changeIndex: changeIndex)
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

/// An instance's identity: its service's slot and its address.
private struct InstanceKey: Hashable {
    var service: Int32
    var address: String
}

/// One instance, stored in a slot of `Registry.instances`. Times are monotonic nanoseconds.
private struct InstanceRecord {
    var address: String
    var service: Int32
    /// Index in the service's `order` array.
    var orderPosition: Int32
    var registeredAt: Int64
    var lastHeartbeat: Int64
    var deadline: Int64

    static let vacant = InstanceRecord(
        address: "", service: -1, orderPosition: -1, registeredAt: 0, lastHeartbeat: 0, deadline: 0)
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
    /// no instance of this service can be due. Heartbeats only move deadlines later, so it
    /// stays valid without being touched on the hot path.
    var earliestDeadline = Int64.max

    init(name: String) {
        self.name = name
    }

    mutating func add(_ slot: Int32, deadline: Int64, changeIndex: UInt64) {
        order.append(slot)
        liveCount += 1
        earliestDeadline = min(earliestDeadline, deadline)
        self.changeIndex = changeIndex
    }

    /// Empties `order[position]` and returns the slots whose position changed, if the
    /// holes were squeezed out.
    mutating func remove(at position: Int32, changeIndex: UInt64) -> [(slot: Int32, position: Int32)] {
        order[Int(position)] = -1
        liveCount -= 1
        self.changeIndex = changeIndex
        let holes = order.count - liveCount
        guard holes > 16 && holes > liveCount else { return [] }
        var moved: [(slot: Int32, position: Int32)] = []
        moved.reserveCapacity(liveCount)
        var next = 0
        for slot in order where slot >= 0 {
            order[next] = slot
            moved.append((slot, Int32(next)))
            next += 1
        }
        order.removeLast(order.count - next)
        return moved
    }
}
