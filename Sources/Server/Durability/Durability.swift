#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import Persistence
import Registry

/// Makes the registry's changes durable without leaving the one loop.
///
/// Every callback that changes something durable ends with `noteActivity()`, which
/// activates the flush event; libevent runs it after the callbacks already due in this
/// turn. The flush takes the turn's journal from the registry, appends it to the log with
/// one `write` (to the page cache: fast), and then:
///
/// - if the write failed (disk full, I/O error), cuts the file back, reverts the turn's
///   changes in the registry and answers each waiting write `503`: nothing acknowledged
///   depends on a byte that is not in the file, and the next turn simply tries again;
/// - under `everysec` and `never`, answers the turn's writes at once (the data is in the
///   kernel: a crash of this process loses nothing; a crash of the machine loses what the
///   last fsync did not cover);
/// - under `always`, asks the sync worker for an fsync and holds the answers until it
///   reports: every write that arrives meanwhile joins the next fsync (group commit).
///
/// Snapshots: when the log has grown well past the live state, the flush starts a new log,
/// and from then on the loop hands the snapshot worker the instances a thousand slots at a
/// time, one step per loop turn, while it goes on serving; the worker encodes and writes
/// them. The snapshot is fuzzy (an instance changed mid-way may be caught before or after
/// the change), which the new log makes exact: it holds every change since the snapshot
/// began, as whole states. Neither worker ever touches the loop's registry, and no step
/// costs the loop more than copying a thousand instances' fields.
final class Durability {
    struct Setup {
        let directory: DataDirectory
        let log: LogFile
        let policy: Config.FsyncPolicy
        let wallOffset: Int64
        let snapshotMinimumLogBytes: Int
        /// The highest change index already on disk.
        let changeIndexOnDisk: UInt64
    }

    /// Used to size the live state before the first snapshot says better.
    private static let assumedBytesPerInstance = 160
    private static let snapshotRetryDelay: Duration = .seconds(60)

    private let base: OpaquePointer
    private let api: RegistryAPI
    private let logger: Logger
    private let directory: DataDirectory
    private let policy: Config.FsyncPolicy
    private let wallOffset: Int64
    private let snapshotMinimumLogBytes: Int
    /// Called after a revert, so that watchers hear of the changes taken back.
    private let afterRevert: (Instant) -> Void

    private var log: LogFile
    private let syncWorker = Worker<SyncRequest, SyncOutcome>(handle: SyncWork.perform)
    private let snapshotWorker: Worker<SnapshotStep, SnapshotProgress> = {
        let session = SnapshotSession()
        return Worker { steps in session.handle(steps) }
    }()
    private var flushEvent: OpaquePointer?
    private var syncReadyEvent: OpaquePointer?
    private var snapshotReadyEvent: OpaquePointer?
    private var everySecondTimer: OpaquePointer?
    /// Runs the next snapshot step on the next loop turn.
    private var snapshotStepTimer: OpaquePointer?

    /// Bytes appended to logs since start-up, across rotations: the positions that
    /// durability is measured in.
    private var appended: UInt64 = 0
    private var syncRequested: UInt64 = 0
    private var durable: UInt64 = 0
    private var lastIndexWritten: UInt64

    /// Answers waiting for their change to be written (`through == nil`, this turn) or,
    /// under `always`, to be fsynced (`through` is where their batch ends).
    private var held: [Held] = []

    private struct Held {
        let request: UnsafeMutablePointer<evhttp_request>
        var response: Response
        var through: UInt64?
        let route: RouteLabel
        let method: HTTPMethod
        let arrived: Instant
    }

    private let metrics: Metrics

    /// Records a failed write owes the log, written first by the next write that works:
    /// expiries (they stay done in the registry), and, when a finished snapshot may hold
    /// changes that were then taken back, records that take them back on disk too.
    private var owedRecords: [JournalEntry] = []
    /// Set while appends fail; cleared, with a log line, by the first that works.
    private var writeFailure: String?
    private var failedWrites = 0
    /// A snapshot being handed over: the next slot to copy, where to stop (slots made later
    /// hold instances the new log has in full), and steps the worker has not yet taken.
    private var snapshot: (generation: UInt64, cursor: Int, end: Int, inFlight: Int, finished: Bool)?
    /// Slots per step, and steps queued for the worker at most (the rest wait in the registry).
    private static let snapshotChunk = 1000
    private static let maxStepsInFlight = 16
    private var nextSnapshotAttempt = Instant(nanoseconds: .min)
    private var bytesPerInstance = Durability.assumedBytesPerInstance

    init(setup: Setup, base: OpaquePointer, api: RegistryAPI, logger: Logger, metrics: Metrics,
         afterRevert: @escaping (Instant) -> Void) {
        self.metrics = metrics
        self.base = base
        self.api = api
        self.logger = logger
        self.directory = setup.directory
        self.log = setup.log
        self.policy = setup.policy
        self.wallOffset = setup.wallOffset
        self.snapshotMinimumLogBytes = setup.snapshotMinimumLogBytes
        self.lastIndexWritten = setup.changeIndexOnDisk
        self.afterRevert = afterRevert

        let context = Unmanaged.passUnretained(self).toOpaque()
        flushEvent = event_new(base, -1, 0, { _, _, context in
            guard let context else { return }
            Unmanaged<Durability>.fromOpaque(context).takeUnretainedValue().flush()
        }, context)
        syncReadyEvent = event_new(base, syncWorker.readyDescriptor, Int16(EV_READ | EV_PERSIST), { _, _, context in
            guard let context else { return }
            Unmanaged<Durability>.fromOpaque(context).takeUnretainedValue().syncReported()
        }, context)
        snapshotReadyEvent = event_new(base, snapshotWorker.readyDescriptor, Int16(EV_READ | EV_PERSIST), { _, _, context in
            guard let context else { return }
            Unmanaged<Durability>.fromOpaque(context).takeUnretainedValue().snapshotReported()
        }, context)
        snapshotStepTimer = event_new(base, -1, 0, { _, _, context in
            guard let context else { return }
            Unmanaged<Durability>.fromOpaque(context).takeUnretainedValue().snapshotStep()
        }, context)
        event_add(syncReadyEvent, nil)
        event_add(snapshotReadyEvent, nil)
        everySecondTimer = event_new(base, -1, Int16(EV_PERSIST), { _, _, context in
            guard let context else { return }
            Unmanaged<Durability>.fromOpaque(context).takeUnretainedValue().everySecond()
        }, context)
        var second = timeval(tv_sec: 1, tv_usec: 0)
        event_add(everySecondTimer, &second)
    }

    /// The fsync of `everysec`, and a retry of records a failed write still owes the log
    /// (whatever the policy) even when no new change comes to carry them.
    private func everySecond() {
        if !owedRecords.isEmpty, let flushEvent { event_active(flushEvent, 0, 0) }
        if policy == .everysec { requestSync() }
    }

    /// What `/metrics` reports.
    struct Stats {
        var logBytes: Int
        var unsyncedBytes: UInt64
        var heldWrites: Int
        var writeErrors: UInt64
        var snapshots: UInt64
        var snapshotFailures: UInt64
    }

    private var writeErrors: UInt64 = 0
    private var snapshotsWritten: UInt64 = 0
    private var snapshotFailures: UInt64 = 0

    var stats: Stats {
        Stats(logBytes: log.length, unsyncedBytes: appended - min(appended, durable), heldWrites: held.count,
              writeErrors: writeErrors, snapshots: snapshotsWritten, snapshotFailures: snapshotFailures)
    }

    // MARK: From the server's callbacks

    /// Holds a write's answer until its change is written (or, under `always`, fsynced).
    func hold(_ request: UnsafeMutablePointer<evhttp_request>, _ response: Response, route: RouteLabel, method: HTTPMethod,
              arrived: Instant) {
        held.append(Held(request: request, response: response, through: nil, route: route, method: method, arrived: arrived))
    }

    private func answer(_ entry: Held, _ response: Response, now: Instant) {
        PendingRequest.send(entry.request, response)
        metrics.countRequest(route: entry.route, method: entry.method, status: response.status,
                             seconds: Double(now.duration(since: entry.arrived).wholeNanoseconds) / 1e9)
    }

    /// Schedules a flush for the end of this loop turn when there is something to write:
    /// journal entries, or a change index that moved without one (expiry protection).
    func noteActivity() {
        let indexMoved = api.changeIndex > lastIndexWritten && writeFailure == nil
        guard api.pendingJournalCount > 0 || indexMoved || (!owedRecords.isEmpty && writeFailure == nil),
              let flushEvent else { return }
        event_active(flushEvent, 0, 0)
    }

    // MARK: The flush

    private func flush() {
        let now = Clock.monotonicNow()
        let changes = api.takeJournal()
        var entries = owedRecords + changes.map(\.entry)
        if api.changeIndex > max(lastIndexWritten, entries.last?.changeIndex ?? 0) {
            entries.append(.indexAdvanced(to: api.changeIndex))
        }
        guard !entries.isEmpty else { return }
        let bytes = Recovery.frame(entries, wallOffset: wallOffset)
        do {
            try log.append(bytes)
        } catch {
            writeFailed(error, changes: changes, now: now)
            return
        }
        if let failure = writeFailure {
            logger.info("persistence_recovered", ["after_failed_writes": failedWrites, "last_error": failure])
            writeFailure = nil
            failedWrites = 0
        }
        owedRecords.removeAll()
        appended += UInt64(bytes.count)
        lastIndexWritten = max(lastIndexWritten, entries.last?.changeIndex ?? 0)
        for position in held.indices where held[position].through == nil { held[position].through = appended }
        if policy == .always {
            requestSync()
            releaseHeld(through: durable)
        } else {
            releaseHeld(through: appended)
        }
        maybeSnapshot(now: now)
    }

    /// The turn's changes never reached the file: take them back and say so to each writer.
    private func writeFailed(_ error: StorageError, changes: [JournalChange], now: Instant) {
        failedWrites += 1
        writeErrors += 1
        if writeFailure == nil || failedWrites % 1000 == 0 {
            logger.error("persistence_write_failed", [
                "error": error.message, "failed_writes": failedWrites,
                "action": "changes answered 503 and not applied; reads go on; writes resume by themselves once the disk accepts them",
            ])
        }
        writeFailure = error.message
        api.revert(changes, now: now)
        owedRecords += changes.filter(\.isExpiry).map(\.entry)
        // A snapshot being taken may already hold some of the changes just taken back, and
        // must not bring them back after a restart. One still being handed over is
        // abandoned (and retried later); one already complete gets records that undo them,
        // in the log that is replayed after it.
        if let run = snapshot {
            if run.finished {
                let index = api.changeIndex
                for change in changes.reversed() where !change.isExpiry {
                    if let prior = change.prior {
                        owedRecords.append(.upsert(prior, changeIndex: index))
                    } else if case .upsert(let state, _) = change.entry {
                        owedRecords.append(.remove(service: state.service, id: state.id, changeIndex: index))
                    }
                }
            } else {
                snapshotWorker.send(.abandon)
                snapshot = nil
                nextSnapshotAttempt = now + Self.snapshotRetryDelay
            }
        }
        // The reason, with its paths, is in the log line above; the client learns what it can act on.
        let response = Response.error(503, "the change could not be written to the registry's disk, so it was not applied; "
            + "retry later: writes resume by themselves once the disk accepts them (the registry's log says why: persistence_write_failed)")
        var kept: [Held] = []
        for entry in held {
            if entry.through == nil { answer(entry, response, now: now) } else { kept.append(entry) }
        }
        held = kept
        afterRevert(now)
    }

    private func releaseHeld(through position: UInt64) {
        var released = 0
        var now: Instant?
        while released < held.count, let through = held[released].through, through <= position {
            if now == nil { now = Clock.monotonicNow() }
            answer(held[released], held[released].response, now: now!)
            released += 1
        }
        if released > 0 { held.removeFirst(released) }
    }

    // MARK: Syncing

    private func requestSync() {
        guard appended > syncRequested else { return }
        syncRequested = appended
        syncWorker.send(.sync(descriptor: log.descriptor, through: appended))
    }

    private func syncReported() {
        for outcome in syncWorker.takeOutcomes() {
            switch outcome {
            case .durable(let through):
                durable = max(durable, through)
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
        releaseHeld(through: policy == .always ? durable : appended)
        logger.flush()
    }

    // MARK: Snapshots

    /// Starts a snapshot when the log is at least `snapshotMinimumLogBytes` long and twice
    /// the size the live state would take.
    private func maybeSnapshot(now: Instant) {
        guard snapshot == nil, now >= nextSnapshotAttempt, log.length >= snapshotMinimumLogBytes,
              log.length >= 2 * api.registry.instanceCount * bytesPerInstance else { return }
        let generation = log.generation + 1
        let next: LogFile
        do {
            next = try directory.openLog(generation: generation)
        } catch {
            logger.warn("snapshot_skipped", ["error": error.message, "retry_in": Self.snapshotRetryDelay.secondsText])
            nextSnapshotAttempt = now + Self.snapshotRetryDelay
            return
        }
        // The old log is fsynced and closed by the sync worker, after which it fsyncs the
        // directory so that the new log's name is durable before anything in it is.
        syncWorker.send(.retire(descriptor: log.descriptor, through: appended, directory: directory.descriptor))
        syncRequested = appended
        log = next
        snapshotWorker.send(.begin(directory: directory, generation: generation, changeIndex: api.changeIndex,
                                   wallOffset: wallOffset))
        snapshot = (generation, 0, api.registry.slotCount, 0, false)
        scheduleSnapshotStep()
    }

    private func scheduleSnapshotStep() {
        guard let snapshotStepTimer else { return }
        var immediately = timeval(tv_sec: 0, tv_usec: 0)
        event_add(snapshotStepTimer, &immediately)
    }

    /// Hands the worker the next slots' instances; once all are handed over, the end.
    private func snapshotStep() {
        guard var run = snapshot, !run.finished, run.inFlight < Self.maxStepsInFlight else { return }
        if run.cursor < run.end {
            let upper = min(run.cursor + Self.snapshotChunk, run.end)
            snapshotWorker.send(.states(api.registry.durableStates(inSlots: run.cursor..<upper)))
            run.cursor = upper
            run.inFlight += 1
        }
        if run.cursor >= run.end {
            snapshotWorker.send(.finish)
            run.finished = true
        }
        snapshot = run
        if !run.finished && run.inFlight < Self.maxStepsInFlight { scheduleSnapshotStep() }
    }

    private func snapshotReported() {
        let now = Clock.monotonicNow()
        for outcome in snapshotWorker.takeOutcomes() {
            switch outcome {
            case .consumed(let steps):
                guard var run = snapshot else { continue }
                run.inFlight -= steps
                snapshot = run
                if !run.finished { scheduleSnapshotStep() }
            case .written(let written):
                snapshotsWritten += 1
                if written.instances > 0 { bytesPerInstance = max(32, written.bytes / written.instances) }
                logger.info("snapshot_written", [
                    "generation": written.generation, "instances": written.instances, "bytes": written.bytes,
                    "took_ms": written.nanoseconds / 1_000_000,
                ])
                snapshot = nil
            case .failed(let generation, let error):
                snapshotFailures += 1
                nextSnapshotAttempt = now + Self.snapshotRetryDelay
                logger.warn("snapshot_failed", [
                    "generation": generation, "error": error.message, "retry_in": Self.snapshotRetryDelay.secondsText,
                    "note": "the log keeps every change; recovery does not need the snapshot",
                ])
                snapshot = nil
            }
        }
        logger.flush()
    }

    // MARK: Stopping

    /// When the server starts its drain: an fsync now, so that writes held under `always`
    /// (and everything else) are answered while the loop still runs.
    func prepareToStop() {
        requestSync()
    }

    /// After the loop has ended: waits for a snapshot in progress, makes the log durable
    /// whatever the policy, and closes it. Returns false when that last fsync failed (the
    /// process should then exit non-zero: acknowledged changes may not be on disk).
    func finish() -> Bool {
        if let run = snapshot, !run.finished { snapshotWorker.send(.abandon) }
        snapshotWorker.stop()
        syncWorker.stop()
        var synced = true
        if fdatasync(log.descriptor) != 0 {
            synced = false
            logger.error("persistence_fsync_failed", ["error": String(cString: strerror(errno)), "at": "shutdown"])
        }
        log.close()
        for event in [flushEvent, syncReadyEvent, snapshotReadyEvent, everySecondTimer, snapshotStepTimer] {
            if let event { event_free(event) }
        }
        snapshotStepTimer = nil
        flushEvent = nil
        syncReadyEvent = nil
        snapshotReadyEvent = nil
        everySecondTimer = nil
        // Writes still held when the drain ended cannot be answered any more (the loop is
        // over, and their connections close). Their changes are in the log, which the fsync
        // above made durable; the writers, told nothing, will retry.
        if !held.isEmpty {
            logger.warn("unanswered_writes_at_exit", ["count": held.count, "on_disk": synced])
            held.removeAll()
        }
        return synced
    }
}
