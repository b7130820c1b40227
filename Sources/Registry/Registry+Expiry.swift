/// Active expiry, lazy expiry of one service, and expiry protection.
extension Registry {
    /// The earliest moment at which some instance may be due. It can be earlier than any
    /// real deadline (heartbeats move deadlines without touching the index), never later.
    public var nextDeadline: Instant? {
        deadlines.top.map { Instant(nanoseconds: $0.key) }
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

    /// Expires the service's due instances if any can be due at `now`; cheap when none can
    /// (one compare). Every read of one service goes through here first.
    mutating func expireDueInstances(ofService serviceSlot: Int32, now: Instant) {
        guard !policy.mirrored, now.nanoseconds >= services[Int(serviceSlot)].earliestDeadline else { return }
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
    mutating func expireOrProtect(_ slot: Int32, now: Instant) -> Bool {
        let serviceSlot = Int(instances[Int(slot)].service)
        guard let share = policy.expiryProtection else {
            expire(slot, now: now)
            return true
        }
        let windowStart = now.nanoseconds &- defaultTTLNanos
        services[serviceSlot].recentExpiries.removeAll { $0 <= windowStart }
        let recent = services[serviceSlot].recentExpiries.count
        let total = services[serviceSlot].liveCount - services[serviceSlot].expiringCount + recent
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
    mutating func liftProtection(ofService serviceSlot: Int32, now: Instant) {
        guard services[Int(serviceSlot)].isProtected else { return }
        services[Int(serviceSlot)].isProtected = false
        services[Int(serviceSlot)].recentExpiries.removeAll()
        events.append(.protectionLifted(service: services[Int(serviceSlot)].name))
        noteChange(ofService: serviceSlot)
        for slot in services[Int(serviceSlot)].order where slot >= 0 && instances[Int(slot)].isProtected {
            instances[Int(slot)].isProtected = false
            if !policy.mirrored { instances[Int(slot)].version = changeIndex }
            deadlines.insert(slot, key: now.nanoseconds)
        }
        services[Int(serviceSlot)].protectedCount = 0
        services[Int(serviceSlot)].earliestDeadline = now.nanoseconds
    }

    private mutating func expire(_ slot: Int32, now: Instant) {
        let instance = instances[Int(slot)]
        if policy.mirrored {
            // Proposed, not done: the removal comes back through `applyCommitted`.
            instances[Int(slot)].isExpiring = true
            services[Int(instance.service)].expiringCount += 1
            deadlines.remove(slot)
            expiryProposals.append(Proposal(service: services[Int(instance.service)].name, id: instance.id, state: nil,
                                            basedOn: instance.version))
            return
        }
        events.append(.expired(service: services[Int(instance.service)].name, id: instance.id,
                               address: instance.attributes.address, lastHeartbeat: Instant(nanoseconds: instance.lastHeartbeat)))
        remove(slot, expired: true)
    }
}
