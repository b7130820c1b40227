import Registry
import RegistryWire

/// The application: the one owner of the `Registry`, its store, its expiry timer, the
/// writers waiting for a commit and the listeners to its changes. Front ends (the native
/// HTTP API today; Consul's, Eureka's, DNS and the dashboard to come) call it and never
/// reach the core themselves.
///
/// Whatever changes the registry (a request, the expiry timer, a read that finds an instance
/// past its deadline) only asks for the **end-of-turn step**, which runs once per loop turn
/// after every callback of the turn (`EventLoop.scheduleEndOfTurn`):
///
/// 1. log what the core did on its own (expiries, protection);
/// 2. hand the turn's journal to the store: writers waiting in this turn are answered at once
///    (committed), later (pending: an fsync) or with 503 (failed: the changes are taken back);
/// 3. tell every change listener which services changed (watchers, the `/services` listing);
/// 4. run the front ends' per-turn upkeep, and re-arm the expiry timer for the next deadline.
final class RegistryService: DurableStateSource {
    /// Index entries one expiry callback may visit: enough to drain 100k due instances in
    /// well under a second, small enough that one batch takes about a millisecond.
    static let expiryBatch = 1_000

    enum CommitResult {
        case committed
        case failed(message: String)
        /// Cluster mode: another change to the instance won; the request must be judged
        /// again (its handler run again) against the mirror as it is now.
        case retry
    }

    typealias CommitWaiter = (CommitResult) -> Void

    var registry: Registry
    private let store: any ChangeStore
    let logger: Logger
    let loop: EventLoop?
    private var expiryTimer: LoopTimer?
    /// The deadline the expiry timer is armed for (monotonic nanoseconds), if armed.
    var armedDeadline: Int64?
    /// The change index the store last heard of: a turn that moved it without a journal
    /// entry (expiry protection changes visible state only) is submitted all the same.
    private var submittedIndex: UInt64

    /// Writers of this turn, and of earlier turns whose batch waits for its ticket.
    private var turnWaiters: [CommitWaiter] = []
    private var pendingCommits: [(ticket: CommitTicket, waiters: [CommitWaiter])] = []
    private var changeListeners: [([String]) -> Void] = []
    /// Told when this replica starts or stops leading (a single registry always leads).
    var roleListeners: [(Bool) -> Void] = []
    private var upkeep: [() -> Void] = []

    /// Set on the first stop signal: `/ready` answers 503 from then on.
    var isDraining = false
    var registrations: UInt64 = 0
    var deregistrations: UInt64 = 0
    var expirations: UInt64 = 0

    /// Cluster mode (`attach(cluster:)`): the registry is a mirror of etcd; writes are judged
    /// here and committed there (see `RegistryService+Cluster`).
    var cluster: Cluster?
    /// The write the handler running now proposed (or deferred, because one for the same
    /// instance is still on its way): `whenCommitted` attaches its writer to it.
    var currentWrite: ClusterStore.PendingWrite?
    var currentDeferral: (service: String, id: String)?

    /// `loop` is nil only for tests that drive the service by hand (`endTurn`).
    init(registry: Registry, store: any ChangeStore, logger: Logger, loop: EventLoop?) {
        self.registry = registry
        self.submittedIndex = registry.changeIndex
        self.store = store
        self.logger = logger
        self.loop = loop
        store.source = self
        store.onCommitted = { [unowned self] ticket in committed(through: ticket) }
        if let loop {
            expiryTimer = loop.timer { [unowned self] in expiryTimerFired() }
            loop.onEndOfTurn { [unowned self] in endTurn(now: Clock.monotonicNow()) }
        }
    }

    // MARK: Listeners

    /// `listener` hears, once per turn, the services whose visible state changed.
    func onChange(_ listener: @escaping ([String]) -> Void) {
        changeListeners.append(listener)
    }

    /// `step` runs at the end of every turn that changed something.
    func onEndOfTurn(_ step: @escaping () -> Void) {
        upkeep.append(step)
    }

    // MARK: Writes

    func register(_ request: RegistrationRequest, now: Instant) -> RegisterOutcome {
        if cluster != nil { return clusterRegister(request, now: now) }
        let outcome = registry.register(service: request.service, id: request.id, address: request.address,
                                        fields: request.fields, now: now)
        let id = request.id ?? request.address
        switch outcome {
        case .registered:
            registrations += 1
            logger.info("registered", ["service": request.service, "id": id, "address": request.address])
        case .updated(let changed):
            if changed { logger.info("updated", ["service": request.service, "id": id]) }
        case .conflict, .invalid, .overLimit:
            break
        }
        noteWork()
        return outcome
    }

    func heartbeat(_ reference: InstanceReference, now: Instant) -> InstanceOutcome {
        if cluster != nil { return clusterHeartbeat(reference, now: now) }
        let outcome = registry.heartbeat(service: reference.service, id: reference.name, address: reference.namingAddress,
                                         status: reference.status, now: now)
        if case .done(true) = outcome, let status = reference.status {
            logger.info("status", ["service": reference.service, "id": reference.name, "status": status.rawValue])
        }
        noteWork()
        return outcome
    }

    func setStatus(_ reference: InstanceReference, to status: InstanceStatus, now: Instant) -> InstanceOutcome {
        if cluster != nil { return clusterSetStatus(reference, to: status, now: now) }
        let outcome = registry.setStatus(service: reference.service, id: reference.name, address: reference.namingAddress,
                                         status: status, now: now)
        if case .done(true) = outcome {
            logger.info("status", ["service": reference.service, "id": reference.name, "status": status.rawValue])
        }
        noteWork()
        return outcome
    }

    /// A check's new verdict (the checker's, or a TTL check's report, which also counts as a
    /// heartbeat).
    func setCheckStatus(service: String, id: String, check: String, to status: CheckStatus, heartbeat: Bool = false,
                        now: Instant) -> InstanceOutcome {
        if cluster != nil { return clusterSetCheckStatus(service: service, id: id, check: check, to: status, heartbeat: heartbeat, now: now) }
        let outcome = registry.setCheckStatus(service: service, id: id, check: check, status: status, heartbeat: heartbeat, now: now)
        if case .done(true) = outcome {
            logger.info("check", ["service": service, "id": id, "check": check, "status": status.rawValue])
        }
        noteWork()
        return outcome
    }

    func deregister(_ reference: InstanceReference, now: Instant) -> InstanceOutcome {
        if cluster != nil { return clusterDeregister(reference, now: now) }
        let outcome = registry.deregister(service: reference.service, id: reference.name, address: reference.namingAddress, now: now)
        if case .done = outcome {
            deregistrations += 1
            logger.info("deregistered", ["service": reference.service, "id": reference.name])
        }
        noteWork()
        return outcome
    }

    /// Whether changes of this turn still wait for the store: a writer must then wait too
    /// (`whenCommitted`) before it may be told its change is kept.
    var hasUncommittedChanges: Bool {
        cluster == nil ? registry.pendingJournalCount > 0 : currentWrite != nil || currentDeferral != nil
    }

    /// Calls `waiter` once this turn's changes are committed, or have failed and been taken
    /// back. A writer whose handler said "answer once committed" is answered from here.
    func whenCommitted(_ waiter: @escaping CommitWaiter) {
        if cluster != nil {
            attachClusterWaiter(waiter)
        } else {
            turnWaiters.append(waiter)
        }
        loop?.scheduleEndOfTurn()
    }

    // MARK: Reads

    /// Runs a read. Reads check deadlines, so one may retire an instance whose TTL ran out;
    /// whatever it changes is taken up by the end-of-turn step like any other change.
    func read<T>(_ body: (inout Registry) -> T) -> T {
        let result = body(&registry)
        noteWork()
        return result
    }

    /// Whether this replica leads (a single registry always does): it alone expires, and runs
    /// the health checks.
    var isLeading: Bool { cluster?.isLeader ?? true }

    func serviceChangeIndex(_ service: String, now: Instant) -> UInt64? {
        read { $0.serviceChangeIndex(service, now: now) }
    }

    var changeIndex: UInt64 { registry.changeIndex }
    var instanceCount: Int { registry.instanceCount }
    var serviceCount: Int { registry.serviceCount }
    var slotCount: Int { registry.slotCount }
    var instanceCountsByStatus: [InstanceStatus: Int] { registry.instanceCountsByStatus }
    /// For tests and views that need the core's reads without a change (no deadline checks).
    var snapshot: Registry { registry }

    func durableStates(inSlots range: Range<Int>) -> [InstanceState] {
        registry.durableStates(inSlots: range)
    }

    /// Start-up from disk is over: restored instances get their full TTL from `now`.
    func finishRestore(changeIndex: UInt64, now: Instant) {
        registry.finishRestore(changeIndex: changeIndex, now: now)
        // The index moves past the stored one at every start; it reaches the log with the
        // first change after it, not as a record of its own.
        submittedIndex = registry.changeIndex
        noteWork()
    }

    // MARK: The end of a turn

    func noteWork() {
        if registry.hasOutput { loop?.scheduleEndOfTurn() }
    }

    /// The end-of-turn step (see the type's comment). The loop calls it; tests may too.
    func endTurn(now: Instant) {
        logEvents(now: now)
        commitTurn(now: now)
        cluster?.store.flush()
        distributeChanges()
        for step in upkeep { step() }
        // What the listeners did (reads finding expired instances) is for the next turn.
        if registry.hasOutput { loop?.scheduleEndOfTurn() }
        rearmExpiry(now: now)
    }

    /// Tells the change listeners what changed since they last heard; the end-of-turn step
    /// does it, and a read that must be exact within the turn (`/services`) may ask first.
    func distributeChanges() {
        let changed = registry.takeChangedServices()
        guard !changed.isEmpty else { return }
        for listener in changeListeners { listener(changed) }
    }

    private func commitTurn(now: Instant) {
        let changes = registry.takeJournal()
        guard !changes.isEmpty || registry.changeIndex != submittedIndex || !turnWaiters.isEmpty else { return }
        let waiters = turnWaiters
        turnWaiters.removeAll()
        defer { submittedIndex = registry.changeIndex }
        switch store.submit(changes, changeIndex: registry.changeIndex, now: now) {
        case .committed:
            for waiter in waiters { waiter(.committed) }
        case .pending(let ticket):
            if !waiters.isEmpty { pendingCommits.append((ticket, waiters)) }
        case .failed(let message):
            registry.revert(changes, now: now)
            store.tookBack(changes, changeIndex: registry.changeIndex, now: now)
            for waiter in waiters { waiter(.failed(message: message)) }
        }
    }

    private func committed(through ticket: CommitTicket) {
        var released = 0
        while released < pendingCommits.count, pendingCommits[released].ticket <= ticket {
            for waiter in pendingCommits[released].waiters { waiter(.committed) }
            released += 1
        }
        if released > 0 { pendingCommits.removeFirst(released) }
    }

    /// Writers still waiting when the loop has ended: their changes are in the store (which
    /// `finish` made durable), but their connections are gone.
    var waitingWriters: Int { pendingCommits.reduce(turnWaiters.count) { $0 + $1.waiters.count } }

    private func logEvents(now: Instant) {
        for event in registry.takeEvents() {
            switch event {
            case .expired(let service, let id, let address, let lastHeartbeat):
                let silence = now.duration(since: lastHeartbeat).wholeNanoseconds / 1_000_000
                expirations += 1
                logger.info("expired", ["service": service, "id": id, "address": address, "last_heartbeat_ms_ago": silence])
            case .protectionStarted(let service, let overdue, let instances):
                logger.warn("expiry_protection_on", [
                    "service": service, "overdue": overdue, "instances": instances,
                    "note": "keeping its overdue instances (marked protected) until their heartbeats return",
                ])
            case .protectionLifted(let service):
                logger.info("expiry_protection_lifted", ["service": service, "note": "heartbeats returned"])
            }
        }
    }

    // MARK: Expiry

    /// One bounded round of active expiry; see `Registry.expireDue(now:limit:)`.
    @discardableResult
    func expireDue(now: Instant, limit: Int = RegistryService.expiryBatch) -> ExpiryProgress {
        let progress = registry.expireDue(now: now, limit: limit)
        noteWork()
        return progress
    }

    private func expiryTimerFired() {
        armedDeadline = nil
        let now = Clock.monotonicNow()
        if cluster != nil {
            proposeExpiries(now: now)
            return
        }
        if expireDue(now: now).moreDue {
            // Yield to the loop so that requests are served between batches.
            arm(at: now.nanoseconds, now: now)
        }
        rearmExpiry(now: now)
    }

    /// Makes sure the timer is armed no later than the registry's next deadline.
    func rearmExpiry(now: Instant) {
        // In a cluster only the leader expires.
        if let cluster, !cluster.isLeader { return }
        guard let next = registry.nextDeadline?.nanoseconds else { return }
        if let armed = armedDeadline, armed <= next { return }
        arm(at: next, now: now)
    }

    func arm(at deadline: Int64, now: Instant) {
        guard let expiryTimer else { return }
        // Round up to the microsecond so the timer never fires just before the deadline.
        let delay = max(0, deadline - now.nanoseconds)
        expiryTimer.schedule(after: .microseconds((delay + 999) / 1000))
        armedDeadline = deadline
    }

    // MARK: Stopping

    /// The first stop signal came.
    func prepareToStop() {
        isDraining = true
        cluster?.resign()
        store.prepareToStop()
    }

    /// After the loop: makes the store durable and closes it. False when that failed.
    func finish() -> Bool {
        cluster?.stop()
        let synced = store.finish()
        if waitingWriters > 0 {
            // Their changes are in the store, which was just made durable; the writers, told
            // nothing, will retry.
            logger.warn("unanswered_writes_at_exit", ["count": waitingWriters, "on_disk": synced])
        }
        turnWaiters.removeAll()
        pendingCommits.removeAll()
        return synced
    }
}
