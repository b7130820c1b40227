/// The journal, taking changes back, and rebuilding from disk.
extension Registry {
    /// Returns the durable changes since the last call, in order (only with
    /// `policy.journaling`), and forgets them.
    public mutating func takeJournal() -> [JournalChange] {
        guard !journal.isEmpty else { return [] }
        defer { journal.removeAll(keepingCapacity: true) }
        return journal
    }

    /// Durable changes made since the last `takeJournal()`.
    public var pendingJournalCount: Int { journal.count }

    /// Makes room for `count` instances in all, ahead of a recovery.
    public mutating func reserveCapacity(instances count: Int) {
        instanceSlots.reserveCapacity(count)
        instances.reserveCapacity(count)
    }

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
                let deadline = deadline(of: instances[Int(slot)], from: now)
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

    mutating func journalUpsert(_ slot: Int32, prior: InstanceRecord?) {
        guard policy.journaling else { return }
        journal.append(JournalChange(.upsert(state(of: instances[Int(slot)]), changeIndex: changeIndex),
                                     prior: prior.map { state(of: $0) }))
    }

    /// Registers `state` as an instance with all its durable fields, or brings an existing
    /// instance back to it; its TTL runs from `now`.
    @discardableResult
    mutating func restoreInstance(_ state: InstanceState, now: Instant) -> Violation? {
        var state = state
        // The TTL bounds are this server's configuration, not a rule of the data: a restart
        // with a narrower `--min-ttl`/`--max-ttl` keeps the instance, its TTL brought within.
        if let ttl = state.attributes.ttl, ttl != InstanceAttributes.noExpiry {
            state.attributes.ttl = min(max(ttl, policy.minimumTTL), policy.maximumTTL)
        }
        let fields = InstanceFields(state.attributes)
        let isNew = serviceSlots[state.service].map { instanceSlots[InstanceKey(service: $0, id: state.id)] == nil } ?? true
        if isNew {
            // The common case of a recovery, taken directly: the rules, then one insert.
            if let violation = Violation.checkServiceName(state.service) ?? Violation.checkAddress(state.attributes.address)
                ?? Violation.checkID(state.id) ?? check(fields) {
                return violation
            }
            insert(service: state.service, id: state.id, attributes: state.attributes, registeredAt: state.registeredAt,
                   now: now, journaling: false)
            return nil
        }
        if case .invalid(let violation) = register(service: state.service, id: state.id, address: state.attributes.address,
                                                   fields: fields, now: now) {
            return violation
        }
        if let serviceSlot = serviceSlots[state.service], let slot = instanceSlots[InstanceKey(service: serviceSlot, id: state.id)] {
            instances[Int(slot)].registeredAt = state.registeredAt.nanoseconds
        }
        return nil
    }

    mutating func removeIfPresent(service: String, id: String) {
        if let serviceSlot = serviceSlots[service], let slot = instanceSlots[InstanceKey(service: serviceSlot, id: id)] {
            remove(slot)
        }
    }

    func state(of instance: InstanceRecord) -> InstanceState {
        InstanceState(service: services[Int(instance.service)].name, id: instance.id, attributes: instance.attributes,
                      registeredAt: Instant(nanoseconds: instance.registeredAt))
    }
}
