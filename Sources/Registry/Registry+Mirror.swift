/// Cluster mode (`policy.mirrored`): the registry as one replica's mirror of a replicated
/// store. **Commit first, then apply**:
///
/// - A write is *judged* against the mirror (`judgeRegister`, `judgeStatus`,
///   `judgeDeregister`): the same rules and outcomes as the direct writes, and a `Proposal`
///   (the instance's new durable state, or its removal, and the revision it was judged
///   against) for the caller to commit. Nothing changes here.
/// - What the store committed comes back in revision order through `applyCommitted`, on
///   every replica alike; each change carries its revision as the change index, so that
///   indexes agree across replicas.
/// - Nothing expires on its own. The leader's expiry timer calls `takeExpiryProposals`,
///   which applies the usual rules (deadlines, expiry protection) and hands out removals to
///   commit; until one comes back the instance is listed but not renewed.
/// - Heartbeats stay soft state: `heartbeat` renews the local deadline, and the leader takes
///   other replicas' heartbeats with `renewReported`.
public struct Proposal: Equatable, Sendable {
    public let service: String
    public let id: String
    /// The instance's new durable state; nil to remove it.
    public let state: InstanceState?
    /// The revision of the instance's last committed change as this mirror knows it (its
    /// change index; 0 when it is not there): the commit must fail if the store has another.
    public let basedOn: UInt64

    public init(service: String, id: String, state: InstanceState?, basedOn: UInt64) {
        self.service = service
        self.id = id
        self.state = state
        self.basedOn = basedOn
    }
}

/// A change the store committed.
public enum CommittedChange: Equatable, Sendable {
    case put(InstanceState)
    case remove(service: String, id: String)
}

extension Registry {
    // MARK: Judging

    /// What `register` would do, without doing it. A new instance's `registeredAt` is `now`.
    public func judgeRegister(service: String, id: String? = nil, address: String, fields: InstanceFields = InstanceFields(),
                              now: Instant) -> (outcome: RegisterOutcome, proposal: Proposal?) {
        if let violation = Violation.checkServiceName(service) ?? Violation.checkAddress(address)
            ?? id.flatMap(Violation.checkID) ?? check(fields) {
            return (.invalid(violation), nil)
        }
        let named = id == nil
        let id = id ?? address
        let slot = peekInstance(service: service, id: id)
        if let slot, !instances[Int(slot)].isExpiring {
            let current = instances[Int(slot)]
            if named, current.attributes.address != address {
                return (.conflict(existingAddress: current.attributes.address), nil)
            }
            let attributes = fields.applied(to: current.attributes, address: address)
            guard attributes != current.attributes else { return (.updated(changed: false), nil) }
            let state = InstanceState(service: service, id: id, attributes: attributes, registeredAt: Instant(nanoseconds: current.registeredAt))
            return (.updated(changed: true), Proposal(service: service, id: id, state: state, basedOn: current.version))
        }
        // New, or taking the place of one whose expiry is proposed (whichever commits first wins).
        if slot == nil, let limit = limitPassed(byNewInstanceOf: service) { return (.overLimit(limit), nil) }
        let attributes = fields.applied(to: InstanceAttributes(address: address), address: address)
        let state = InstanceState(service: service, id: id, attributes: attributes, registeredAt: now)
        return (.registered, Proposal(service: service, id: id, state: state, basedOn: slot.map { instances[Int($0)].version } ?? 0))
    }

    /// What `setStatus` (or a heartbeat carrying a status) would do, without doing it.
    public func judgeStatus(service: String, id: String, address: String? = nil, status: InstanceStatus) -> (outcome: InstanceOutcome, proposal: Proposal?) {
        switch judgedInstance(service: service, id: id, address: address) {
        case .failure(let refusal):
            return (refusal.outcome, nil)
        case .success(let slot):
            let current = instances[Int(slot)]
            guard current.attributes.status != status else { return (.done(changed: false), nil) }
            var attributes = current.attributes
            attributes.status = status
            let state = InstanceState(service: service, id: id, attributes: attributes, registeredAt: Instant(nanoseconds: current.registeredAt))
            return (.done(changed: true), Proposal(service: service, id: id, state: state, basedOn: current.version))
        }
    }

    /// What `setCheckStatus` would do, without doing it (the heartbeat, soft state, is the
    /// caller's to count).
    public func judgeCheckStatus(service: String, id: String, check checkID: String, status: CheckStatus) -> (outcome: InstanceOutcome, proposal: Proposal?) {
        switch judgedInstance(service: service, id: id, address: nil) {
        case .failure(let refusal):
            return (refusal.outcome, nil)
        case .success(let slot):
            let current = instances[Int(slot)]
            guard let position = current.attributes.checks.firstIndex(where: { $0.id == checkID }) else { return (.unknownCheck, nil) }
            guard current.attributes.checks[position].status != status else { return (.done(changed: false), nil) }
            var attributes = current.attributes
            attributes.checks[position].status = status
            let state = InstanceState(service: service, id: id, attributes: attributes, registeredAt: Instant(nanoseconds: current.registeredAt))
            return (.done(changed: true), Proposal(service: service, id: id, state: state, basedOn: current.version))
        }
    }

    /// What `deregister` would do, without doing it.
    public func judgeDeregister(service: String, id: String, address: String? = nil) -> (outcome: InstanceOutcome, proposal: Proposal?) {
        switch judgedInstance(service: service, id: id, address: address) {
        case .failure(let refusal):
            return (refusal.outcome, nil)
        case .success(let slot):
            return (.done(changed: true), Proposal(service: service, id: id, state: nil, basedOn: instances[Int(slot)].version))
        }
    }

    /// The revision of the instance's last committed change (0: not there).
    public func committedRevision(service: String, id: String) -> UInt64 {
        peekInstance(service: service, id: id).map { instances[Int($0)].version } ?? 0
    }

    private func judgedInstance(service: String, id: String, address: String?) -> Result<Int32, InstanceOutcomeError> {
        if let violation = Violation.checkServiceName(service) ?? Violation.checkID(id) { return .failure(.init(.invalid(violation))) }
        guard serviceSlots[service] != nil else { return .failure(.init(.unknownService)) }
        guard let slot = peekInstance(service: service, id: id), !instances[Int(slot)].isExpiring else {
            return .failure(.init(.unknownInstance))
        }
        if let address, instances[Int(slot)].attributes.address != address { return .failure(.init(.unknownInstance)) }
        return .success(slot)
    }

    func peekInstance(service: String, id: String) -> Int32? {
        guard let serviceSlot = serviceSlots[service] else { return nil }
        return instanceSlots[InstanceKey(service: serviceSlot, id: id)]
    }

    // MARK: Applying

    /// Applies one committed change at `revision` (never lower than one applied before): a
    /// visible change with `revision` as its change index. A new instance's TTL runs from
    /// `now`; an updated one keeps its deadline. Returns the rule a put breaks (the change is
    /// then skipped: the store holds something this registry would never write).
    ///
    /// `modRevision`, when given, is the revision the store holds for the instance's key if
    /// it differs from `revision` (a load notes every change at one revision).
    @discardableResult
    public mutating func applyCommitted(_ change: CommittedChange, revision: UInt64, modRevision: UInt64? = nil,
                                        now: Instant) -> Violation? {
        precondition(policy.mirrored, "applyCommitted is for a mirror")
        applyingRevision = revision
        defer {
            applyingRevision = nil
            changeIndex = max(changeIndex, revision)
            if let modRevision, case .put(let state) = change, let slot = peekInstance(service: state.service, id: state.id) {
                instances[Int(slot)].version = modRevision
            }
        }
        switch change {
        case .remove(let service, let id):
            removeIfPresent(service: service, id: id)
            return nil
        case .put(var state):
            if let ttl = state.attributes.ttl, ttl != InstanceAttributes.noExpiry {
                state.attributes.ttl = min(max(ttl, policy.minimumTTL), policy.maximumTTL)
            }
            if let violation = Violation.checkServiceName(state.service) ?? Violation.checkAddress(state.attributes.address)
                ?? Violation.checkID(state.id) ?? check(InstanceFields(state.attributes)) {
                return violation
            }
            guard let slot = peekInstance(service: state.service, id: state.id) else {
                insert(service: state.service, id: state.id, attributes: state.attributes, registeredAt: state.registeredAt,
                       now: now, journaling: false)
                return nil
            }
            _ = update(slot, to: state.attributes)
            instances[Int(slot)].registeredAt = state.registeredAt.nanoseconds
            if instances[Int(slot)].isExpiring {
                // Registered again before its removal was committed: alive, with a full TTL.
                instances[Int(slot)].isExpiring = false
                services[Int(instances[Int(slot)].service)].expiringCount -= 1
                let deadline = deadline(of: instances[Int(slot)], from: now)
                instances[Int(slot)].lastHeartbeat = now.nanoseconds
                instances[Int(slot)].deadline = deadline
                deadlines.insert(slot, key: deadline)
            } else if !instances[Int(slot)].isProtected {
                // A shorter TTL can bring the deadline before the heap's key.
                let deadline = deadline(of: instances[Int(slot)], from: Instant(nanoseconds: instances[Int(slot)].lastHeartbeat))
                instances[Int(slot)].deadline = deadline
                if deadline < deadlines.key(of: slot) { deadlines.update(slot, key: deadline) }
            }
            noteChange(ofInstance: slot)
            return nil
        }
    }

    /// Makes the mirror hold exactly `states` (each with its key's revision in the store), as
    /// a read of the whole store at one revision found them; each difference is a change
    /// noted at `revision`. Returns the states skipped for breaking a rule.
    public mutating func reconcile(_ states: [(state: InstanceState, modRevision: UInt64)], revision: UInt64,
                                   now: Instant) -> [(InstanceState, Violation)] {
        var wanted = Set<String>(minimumCapacity: states.count)
        for entry in states { wanted.insert(entry.state.service + "/" + entry.state.id) }
        var gone: [(String, String)] = []
        for serviceSlot in services.indices where services[serviceSlot].liveCount > 0 {
            for slot in services[serviceSlot].order where slot >= 0 {
                let key = services[serviceSlot].name + "/" + instances[Int(slot)].id
                if !wanted.contains(key) { gone.append((services[serviceSlot].name, instances[Int(slot)].id)) }
            }
        }
        for (service, id) in gone { applyCommitted(.remove(service: service, id: id), revision: revision, now: now) }
        var skipped: [(InstanceState, Violation)] = []
        for entry in states {
            if let slot = peekInstance(service: entry.state.service, id: entry.state.id), instances[Int(slot)].version == entry.modRevision {
                continue
            }
            if let violation = applyCommitted(.put(entry.state), revision: revision, modRevision: entry.modRevision, now: now) {
                skipped.append((entry.state, violation))
            }
        }
        return skipped
    }

    /// After loading the store whole at `revision`: the index is there, every service counts
    /// as changed at it, and no notices are pending (as after a restart).
    public mutating func finishLoad(revision: UInt64) {
        changeIndex = max(changeIndex, revision)
        for slot in serviceSlots.values {
            services[Int(slot)].changeIndex = changeIndex
            services[Int(slot)].awaitingNotice = false
        }
        changedServices.removeAll()
        events.removeAll()
    }

    // MARK: The leader

    /// This replica has just become the leader: every instance gets a full TTL from `now`
    /// (as after a restart: the old leader's heartbeat times are not known here), and
    /// nothing is protected or being expired.
    public mutating func restartDeadlines(now: Instant) {
        deadlines = DeadlineHeap()
        expiryProposals.removeAll()
        for serviceSlot in services.indices where services[serviceSlot].liveCount > 0 {
            services[serviceSlot].isProtected = false
            services[serviceSlot].protectedCount = 0
            services[serviceSlot].expiringCount = 0
            services[serviceSlot].recentExpiries.removeAll()
            for slot in services[serviceSlot].order where slot >= 0 {
                instances[Int(slot)].isProtected = false
                instances[Int(slot)].isExpiring = false
                let deadline = deadline(of: instances[Int(slot)], from: now)
                instances[Int(slot)].lastHeartbeat = now.nanoseconds
                instances[Int(slot)].deadline = deadline
                deadlines.insert(slot, key: deadline)
            }
            services[serviceSlot].earliestDeadline = now.nanoseconds &+ min(defaultTTLNanos, policy.minimumTTL.wholeNanoseconds)
        }
    }

    /// The removals the deadlines call for at `now`, under the usual rules (expiry
    /// protection included), visiting at most `limit` entries of the deadline index. Each
    /// instance is handed out once; `expiryNotCommitted` puts one back.
    public mutating func takeExpiryProposals(now: Instant, limit: Int) -> (proposals: [Proposal], moreDue: Bool) {
        precondition(policy.mirrored, "takeExpiryProposals is for a mirror")
        let progress = expireDue(now: now, limit: limit)
        defer { expiryProposals.removeAll(keepingCapacity: true) }
        return (expiryProposals, progress.moreDue)
    }

    /// A proposed expiry was not committed (the store failed, or leadership was lost): the
    /// instance is due again at `retryAt`, if it is still there.
    public mutating func expiryNotCommitted(service: String, id: String, retryAt: Instant) {
        guard let slot = peekInstance(service: service, id: id), instances[Int(slot)].isExpiring else { return }
        instances[Int(slot)].isExpiring = false
        services[Int(instances[Int(slot)].service)].expiringCount -= 1
        instances[Int(slot)].deadline = retryAt.nanoseconds
        deadlines.insert(slot, key: retryAt.nanoseconds)
    }

    /// Another replica took a heartbeat for the instance at `heartbeatAt` (on this
    /// registry's time line). False when the instance is not here to renew.
    @discardableResult
    public mutating func renewReported(service: String, id: String, heartbeatAt: Instant) -> Bool {
        guard let slot = peekInstance(service: service, id: id), !instances[Int(slot)].isExpiring else { return false }
        guard heartbeatAt.nanoseconds > instances[Int(slot)].lastHeartbeat else { return true }
        if renew(slot, now: heartbeatAt) { liftProtection(ofService: instances[Int(slot)].service, now: heartbeatAt) }
        return true
    }
}

/// An outcome other than "found", carried as a failure.
struct InstanceOutcomeError: Error {
    let outcome: InstanceOutcome
    init(_ outcome: InstanceOutcome) { self.outcome = outcome }
}
