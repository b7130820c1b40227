/// One service: its instances in registration order and what readers need to cache it.
struct ServiceRecord {
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
    var counts = ServiceCounts()
    var roundRobin: UInt64 = 0
    /// Already in `Registry.changedServices`.
    var awaitingNotice = false
    var isProtected = false
    var protectedCount = 0
    /// In a mirror: instances whose expiry is proposed, still counted in `liveCount`.
    var expiringCount = 0
    /// When instances of this service expired within the last heartbeat timeout.
    var recentExpiries: [Int64] = []

    init(name: String) {
        self.name = name
    }

    mutating func add(_ instance: InstanceRecord, slot: Int32) {
        order.append(slot)
        liveCount += 1
        earliestDeadline = min(earliestDeadline, instance.deadline)
        count(instance.attributes, by: 1)
    }

    mutating func replace(_ before: InstanceAttributes, with after: InstanceAttributes) {
        count(before, by: -1)
        count(after, by: 1)
    }

    private mutating func count(_ attributes: InstanceAttributes, by delta: Int) {
        counts.count(attributes, by: delta)
    }

    /// Empties `order[position]` and returns the slots whose position changed, if the
    /// holes were squeezed out.
    mutating func remove(_ instance: InstanceRecord, at position: Int32) -> [(slot: Int32, position: Int32)] {
        order[Int(position)] = -1
        liveCount -= 1
        count(instance.attributes, by: -1)
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
