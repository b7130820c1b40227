#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Persistence
import Registry

/// The data directory as a `ChangeStore`: the log, its three fsync policies, and snapshots.
/// The decisions are `DurabilityMachine`'s; this shell does its I/O on the loop (appends:
/// one `write` to the page cache per turn) and through two helper threads (fsync; snapshot
/// encoding and writing), which never touch the registry.
///
/// - A turn's records are appended with one `write`. If it fails (disk full, I/O error), the
///   file is cut back, `submit` says `.failed`, and the service takes the changes back and
///   answers 503: nothing acknowledged depends on a byte that is not in the file, and the
///   next turn simply tries again.
/// - Under `everysec` and `never` a turn is committed once written (the data is in the
///   kernel: a crash of this process loses nothing; a crash of the machine loses what the
///   last fsync did not cover). Under `always` it is pending until the sync worker reports
///   an fsync that covers it; every turn written meanwhile joins the next fsync.
/// - Snapshots: when the log has grown well past the live state, the store starts a new log
///   and hands the snapshot worker the instances a thousand slots at a time, one step per
///   loop turn, while the loop goes on serving. The snapshot is fuzzy (an instance changed
///   mid-way may be caught before or after the change), which the new log makes exact: it
///   holds every change since the snapshot began, as whole states.
final class LocalLogStore: ChangeStore {
    struct Setup {
        let directory: DataDirectory
        let log: LogFile
        let policy: Config.FsyncPolicy
        let wallOffset: Int64
        let snapshotMinimumLogBytes: Int
        /// The highest change index already on disk.
        let changeIndexOnDisk: UInt64
    }

    var onCommitted: ((CommitTicket) -> Void)?
    weak var source: (any DurableStateSource)?

    private var machine: DurabilityMachine
    private let logger: Logger
    private let directory: DataDirectory
    private let wallOffset: Int64
    private var log: LogFile
    private let syncWorker = Worker<SyncRequest, SyncOutcome>(handle: SyncWork.perform)
    private let snapshotWorker: Worker<Persistence.SnapshotStep, SnapshotProgress> = {
        let session = SnapshotSession()
        return Worker { steps in session.handle(steps) }
    }()
    private var workerEvents: [OpaquePointer] = []
    private var snapshotStepTimer: LoopTimer?
    /// Tickets handed out and not yet committed, oldest first.
    private var pendingTickets: [CommitTicket] = []

    init(setup: Setup, loop: EventLoop, logger: Logger) {
        self.logger = logger
        self.directory = setup.directory
        self.log = setup.log
        self.wallOffset = setup.wallOffset
        let policy: DurabilityMachine.Policy
        switch setup.policy {
        case .always: policy = .always
        case .everysec: policy = .everysec
        case .never: policy = .never
        }
        machine = DurabilityMachine(policy: policy, snapshotMinimumLogBytes: setup.snapshotMinimumLogBytes,
                                    changeIndexOnDisk: setup.changeIndexOnDisk)
        // A worker's pipe turns readable when it has outcomes for the loop.
        let context = Unmanaged.passUnretained(self).toOpaque()
        if let event = event_new(loop.base, syncWorker.readyDescriptor, Int16(EV_READ | EV_PERSIST), { _, _, context in
            guard let context else { return }
            Unmanaged<LocalLogStore>.fromOpaque(context).takeUnretainedValue().syncReported()
        }, context) { workerEvents.append(event) }
        if let event = event_new(loop.base, snapshotWorker.readyDescriptor, Int16(EV_READ | EV_PERSIST), { _, _, context in
            guard let context else { return }
            Unmanaged<LocalLogStore>.fromOpaque(context).takeUnretainedValue().snapshotReported()
        }, context) { workerEvents.append(event) }
        for event in workerEvents { event_add(event, nil) }
        snapshotStepTimer = loop.timer { [unowned self] in snapshotStep() }
        loop.timer(persistent: true) { [unowned self] in everySecond() }.schedule(after: .seconds(1))
    }

    var stats: StoreStats? {
        let figures = machine.stats
        return StoreStats(logBytes: log.length, unsyncedBytes: figures.unsyncedBytes, writeErrors: figures.writeErrors, snapshots: figures.snapshots, snapshotFailures: figures.snapshotFailures)
    }

    // MARK: A turn's changes

    func submit(_ changes: [JournalChange], changeIndex: UInt64, now: Instant) -> SubmitOutcome {
        guard machine.hasWork(changes: changes.count, changeIndex: changeIndex) else { return .committed }
        guard let acknowledgement = append(machine.records(for: changes, changeIndex: changeIndex), now: now) else {
            // The reason, with its paths, is in the log line; the client learns what it can act on.
            return .failed("the change could not be written to the registry's disk, so it was not applied; "
                + "retry later: writes resume by themselves once the disk accepts them (the registry's log says why: persistence_write_failed)")
        }
        switch acknowledgement {
        case .now:
            return .committed
        case .afterSync(let through):
            let ticket = CommitTicket(position: through)
            pendingTickets.append(ticket)
            return .pending(ticket)
        }
    }

    /// Appends `records` with one write; nil when it failed (nothing of it is in the file).
    private func append(_ records: [JournalEntry], now: Instant) -> DurabilityMachine.Acknowledgement? {
        guard !records.isEmpty else { return .now }
        let bytes = Recovery.frame(records, wallOffset: wallOffset)
        do {
            try log.append(bytes)
        } catch {
            perform(machine.appendFailed(error: error.message, now: now))
            return nil
        }
        let (acknowledgement, actions) = machine.appendSucceeded(records, byteCount: bytes.count)
        perform(actions)
        maybeSnapshot(now: now)
        return acknowledgement
    }

    func tookBack(_ changes: [JournalChange], changeIndex: UInt64, now: Instant) {
        machine.tookBack(changes, changeIndex: changeIndex)
    }

    private func perform(_ actions: [DurabilityMachine.Action]) {
        for action in actions {
            switch action {
            case .requestSync(let through):
                syncWorker.send(.sync(descriptor: log.descriptor, through: through))
            case .logRecovered(let failedWrites, let lastError):
                logger.info("persistence_recovered", ["after_failed_writes": failedWrites, "last_error": lastError])
            case .logWriteFailed(let error, let failedWrites):
                logger.error("persistence_write_failed", [
                    "error": error, "failed_writes": failedWrites,
                    "action": "changes answered 503 and not applied; reads go on; writes resume by themselves once the disk accepts them",
                ])
            case .abandonSnapshot:
                snapshotWorker.send(.abandon)
            }
        }
    }

    /// The fsync of `everysec`, and a retry of records a failed write still owes the log
    /// (whatever the policy) even when no new change comes to carry them.
    private func everySecond() {
        let (retryOwed, actions) = machine.everySecond()
        perform(actions)
        // Owed records carry their own change indexes: they need no turn of the registry's.
        if retryOwed, let acknowledgement = append(machine.owedRecords, now: Clock.monotonicNow()),
           case .afterSync(let through) = acknowledgement {
            pendingTickets.append(CommitTicket(position: through))
        }
    }

    // MARK: Syncing

    private func syncReported() {
        for outcome in syncWorker.takeOutcomes() {
            switch outcome {
            case .durable(let through):
                machine.synced(through: through)
            case .failed(let reason):
                // After a failed fsync the kernel may have dropped the pages it could not
                // write, and a later fsync would not report them: nothing written since the
                // last good fsync can be vouched for. Stop; a restart reads back exactly what
                // is on disk, and under `always` every acknowledged change was fsynced first.
                logger.error("persistence_fsync_failed", [
                    "error": reason, "action": "exiting: restart the registry; recovery keeps everything that reached the disk",
                ])
                logger.flush()
                exit(1)
            }
        }
        var latest: CommitTicket?
        while let first = pendingTickets.first, first.position <= machine.durable {
            latest = first
            pendingTickets.removeFirst()
        }
        if let latest { onCommitted?(latest) }
    }

    // MARK: Snapshots

    private func maybeSnapshot(now: Instant) {
        guard let source, machine.shouldSnapshot(logBytes: log.length, liveInstances: source.instanceCount, now: now) else { return }
        let generation = log.generation + 1
        let next: LogFile
        do {
            next = try directory.openLog(generation: generation)
        } catch {
            logger.warn("snapshot_skipped", ["error": error.message, "retry_in": DurabilityMachine.snapshotRetryDelay.secondsText])
            machine.snapshotSkipped(now: now)
            return
        }
        // The old log is fsynced and closed by the sync worker, after which it fsyncs the
        // directory so that the new log's name is durable before anything in it is.
        syncWorker.send(.retire(descriptor: log.descriptor, through: machine.appended, directory: directory.descriptor))
        machine.logRetired()
        log = next
        snapshotWorker.send(.begin(directory: directory, generation: generation, changeIndex: source.changeIndex,
                                   wallOffset: wallOffset))
        machine.snapshotBegan(slotCount: source.slotCount)
        snapshotStepTimer?.schedule(after: .zero)
    }

    /// Hands the worker the next slots' instances; once all are handed over, the end.
    private func snapshotStep() {
        guard let source, let step = machine.nextSnapshotStep() else { return }
        switch step {
        case .states(let slots): snapshotWorker.send(.states(source.durableStates(inSlots: slots)))
        case .finish: snapshotWorker.send(.finish)
        }
        if machine.wantsSnapshotStep { snapshotStepTimer?.schedule(after: .zero) }
    }

    private func snapshotReported() {
        let now = Clock.monotonicNow()
        for outcome in snapshotWorker.takeOutcomes() {
            switch outcome {
            case .consumed(let steps):
                machine.snapshotStepsConsumed(steps)
                if machine.wantsSnapshotStep { snapshotStepTimer?.schedule(after: .zero) }
            case .written(let written):
                machine.snapshotWritten(bytes: written.bytes, instances: written.instances)
                logger.info("snapshot_written", [
                    "generation": written.generation, "instances": written.instances, "bytes": written.bytes,
                    "took_ms": written.nanoseconds / 1_000_000,
                ])
            case .failed(let generation, let error):
                machine.snapshotFailed(now: now)
                logger.warn("snapshot_failed", [
                    "generation": generation, "error": error.message, "retry_in": DurabilityMachine.snapshotRetryDelay.secondsText,
                    "note": "the log keeps every change; recovery does not need the snapshot",
                ])
            }
        }
    }

    // MARK: Stopping

    /// When the drain starts: an fsync now, so that writes held under `always` (and
    /// everything else) are answered while the loop still runs.
    func prepareToStop() {
        perform(machine.prepareToStop())
    }

    /// After the loop has ended: waits for a snapshot in progress, makes the log durable
    /// whatever the policy, and closes it.
    func finish() -> Bool {
        if machine.snapshotUnfinished { snapshotWorker.send(.abandon) }
        snapshotWorker.stop()
        syncWorker.stop()
        var synced = true
        if fdatasync(log.descriptor) != 0 {
            synced = false
            logger.error("persistence_fsync_failed", ["error": String(cString: strerror(errno)), "at": "shutdown"])
        }
        log.close()
        for event in workerEvents { event_free(event) }
        workerEvents.removeAll()
        return synced
    }
}
