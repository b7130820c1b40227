import Registry
import RegistryWire

/// Cluster mode: **commit first, then apply.** A write is judged against this replica's
/// mirror (the core's own rules, so a 4xx is given at once), its proposal goes to etcd with
/// the turn's others (`ClusterStore`), and its writer is answered once the mirror has
/// applied the commit that the watch brings back, on every replica alike. A write that
/// loses to another change of the same instance is judged again (`CommitResult.retry`);
/// one for an instance whose previous write is still on its way waits for it, then is
/// judged. Heartbeats renew the mirror's deadlines and are relayed to the leader, which
/// alone expires; a heartbeat that carries a new status is a write like `/status`.
extension RegistryService {
    func attach(cluster: Cluster) {
        precondition(registry.policy.mirrored, "cluster mode needs a mirrored registry")
        self.cluster = cluster
    }

    // MARK: Writes

    /// Starts a write's bookkeeping: a write left by a handler that did not wait for it is
    /// still committed, unanswered.
    private func beginWrite() {
        currentWrite = nil
        currentDeferral = nil
    }

    /// True (and the write deferred) when a write to the same instance is on its way.
    private func deferIfBusy(service: String, id: String) -> Bool {
        guard let cluster, cluster.store.isBusy(service: service, id: id) else { return false }
        currentDeferral = (service, id)
        return true
    }

    private func propose(_ proposal: Proposal?) {
        guard let proposal, let cluster else { return }
        currentWrite = cluster.store.submit(proposal)
        loop?.scheduleEndOfTurn()
    }

    private func renewed(service: String, id: String, now: Instant) {
        if let cluster, !cluster.isLeader { cluster.relay.note(service: service, id: id, now: now) }
    }

    func clusterRegister(_ request: RegistrationRequest, now: Instant) -> RegisterOutcome {
        beginWrite()
        let id = request.id ?? request.address
        // The answer of a deferred write is given after it is judged again.
        if deferIfBusy(service: request.service, id: id) { return .updated(changed: false) }
        let (outcome, proposal) = registry.judgeRegister(service: request.service, id: request.id, address: request.address,
                                                         fields: request.fields, now: now)
        if case .updated = outcome {
            // Counts as a heartbeat, whatever else it changes.
            _ = registry.heartbeat(service: request.service, id: id, now: now)
            renewed(service: request.service, id: id, now: now)
        }
        propose(proposal)
        return outcome
    }

    func clusterHeartbeat(_ reference: InstanceReference, now: Instant) -> InstanceOutcome {
        beginWrite()
        if let status = reference.status {
            if deferIfBusy(service: reference.service, id: reference.name) { return .done(changed: false) }
            let (outcome, proposal) = registry.judgeStatus(service: reference.service, id: reference.name,
                                                           address: reference.namingAddress, status: status)
            guard case .done = outcome else { return outcome }
            _ = registry.heartbeat(service: reference.service, id: reference.name, now: now)
            renewed(service: reference.service, id: reference.name, now: now)
            propose(proposal)
            return outcome
        }
        let outcome = registry.heartbeat(service: reference.service, id: reference.name, address: reference.namingAddress, now: now)
        if case .done = outcome { renewed(service: reference.service, id: reference.name, now: now) }
        noteWork()
        return outcome
    }

    func clusterSetStatus(_ reference: InstanceReference, to status: InstanceStatus, now: Instant) -> InstanceOutcome {
        beginWrite()
        if deferIfBusy(service: reference.service, id: reference.name) { return .done(changed: false) }
        let (outcome, proposal) = registry.judgeStatus(service: reference.service, id: reference.name,
                                                       address: reference.namingAddress, status: status)
        propose(proposal)
        return outcome
    }

    func clusterSetCheckStatus(service: String, id: String, check: String, to status: CheckStatus, heartbeat: Bool,
                               now: Instant) -> InstanceOutcome {
        beginWrite()
        if deferIfBusy(service: service, id: id) { return .done(changed: false) }
        let (outcome, proposal) = registry.judgeCheckStatus(service: service, id: id, check: check, status: status)
        if heartbeat, case .done = outcome {
            _ = registry.heartbeat(service: service, id: id, now: now)
            renewed(service: service, id: id, now: now)
        }
        propose(proposal)
        noteWork()
        return outcome
    }

    func clusterDeregister(_ reference: InstanceReference, now: Instant) -> InstanceOutcome {
        beginWrite()
        if deferIfBusy(service: reference.service, id: reference.name) { return .done(changed: true) }
        let (outcome, proposal) = registry.judgeDeregister(service: reference.service, id: reference.name,
                                                           address: reference.namingAddress)
        propose(proposal)
        return outcome
    }

    /// The writer of the write just judged: answered when it is committed and applied here.
    func attachClusterWaiter(_ waiter: @escaping CommitWaiter) {
        if let write = currentWrite {
            currentWrite = nil
            write.waiter = { [unowned self] result in
                switch result {
                case .committed(let revision):
                    logCommitted(write.proposal, revision: revision)
                    waiter(.committed)
                case .conflict:
                    waiter(.retry)
                case .failed(let message):
                    waiter(.failed(message: message))
                }
            }
        } else if let deferral = currentDeferral, let cluster {
            currentDeferral = nil
            cluster.store.whenFree(service: deferral.service, id: deferral.id) { waiter(.retry) }
        } else {
            waiter(.committed)
        }
    }

    private func logCommitted(_ proposal: Proposal, revision: Int64) {
        if let state = proposal.state {
            if proposal.basedOn == 0 {
                registrations += 1
                logger.info("registered", ["service": state.service, "id": state.id, "address": state.attributes.address, "revision": revision])
            } else {
                logger.info("updated", ["service": state.service, "id": state.id, "status": state.attributes.status.rawValue, "revision": revision])
            }
        } else {
            deregistrations += 1
            logger.info("deregistered", ["service": proposal.service, "id": proposal.id, "revision": revision])
        }
    }

    // MARK: What etcd committed

    /// The whole store, read at `revision`: the mirror is made to match it. The first time,
    /// every change is noted at `index` (the registry's last change), so that a replica
    /// that starts now hands out the same index as one that watched every change.
    func loadCommitted(_ states: [(state: InstanceState, modRevision: UInt64)], index: UInt64, revision: UInt64) {
        let now = Clock.monotonicNow()
        let first = registry.instanceCount == 0 && registry.changeIndex <= 1
        let skipped = registry.reconcile(states, revision: first ? index : revision, now: now)
        if first { registry.finishLoad(revision: index) }
        for (state, violation) in skipped {
            logger.warn("etcd_value_skipped", ["service": state.service, "id": state.id, "error": violation.message])
        }
        if let cluster, cluster.isLeader { registry.restartDeadlines(now: now) }
        noteWork()
        rearmExpiry(now: now)
    }

    func applyCommitted(_ changes: [(change: CommittedChange, revision: UInt64)]) {
        let now = Clock.monotonicNow()
        for (change, revision) in changes {
            if let violation = registry.applyCommitted(change, revision: revision, now: now), case .put(let state) = change {
                logger.warn("etcd_value_skipped", ["service": state.service, "id": state.id, "error": violation.message])
            }
        }
        noteWork()
        rearmExpiry(now: now)
    }

    // MARK: Leading

    func roleChanged(leading: Bool) {
        let now = Clock.monotonicNow()
        if leading {
            // As after a restart: the old leader's heartbeat times are not known here.
            registry.restartDeadlines(now: now)
            armedDeadline = nil
            rearmExpiry(now: now)
        }
        for listener in roleListeners { listener(leading) }
        noteWork()
    }

    /// The leader's expiry timer: the due instances' removals go to etcd, guarded by the
    /// lease; those not committed are due again a second later.
    func proposeExpiries(now: Instant) {
        guard let cluster, cluster.isLeader else { return }
        let (proposals, moreDue) = registry.takeExpiryProposals(now: now, limit: RegistryService.expiryBatch)
        for proposal in proposals {
            let write = cluster.store.submit(proposal, isExpiry: true)
            write.waiter = { [unowned self] result in
                switch result {
                case .committed(let revision):
                    expirations += 1
                    logger.info("expired", ["service": proposal.service, "id": proposal.id, "revision": revision])
                case .conflict, .failed:
                    registry.expiryNotCommitted(service: proposal.service, id: proposal.id, retryAt: Clock.monotonicNow() + .seconds(1))
                    rearmExpiry(now: Clock.monotonicNow())
                }
            }
        }
        if !proposals.isEmpty { loop?.scheduleEndOfTurn() }
        noteWork()
        if moreDue { arm(at: now.nanoseconds, now: now) }
        rearmExpiry(now: now)
    }
}
