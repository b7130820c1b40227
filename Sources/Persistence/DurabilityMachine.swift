import Registry

/// The decisions of the local log, with no I/O: which records a turn appends, when a write
/// is acknowledged, what a failed write owes the log, when a snapshot starts and how its
/// hand-over proceeds. The loop's shell (`LocalLogStore` in the server) does what the
/// returned actions say and reports back; unit tests drive the machine with a fake clock.
///
/// Positions: `appended` counts every byte appended to any log since start-up, across
/// rotations, so "durable through byte N" is one number. Under `always` an append is
/// acknowledged once an fsync covers it; every append that arrives while an fsync runs joins
/// the next one (the sync worker does one fsync per batch of requests: group commit).
public struct DurabilityMachine: Sendable {
    public enum Policy: Sendable {
        /// Acknowledge after fsync.
        case always
        /// Acknowledge after the write; fsync once a second.
        case everysec
        /// Acknowledge after the write; the kernel syncs when it likes.
        case never
    }

    /// What the shell must do.
    public enum Action: Equatable, Sendable {
        /// Ask the sync worker to make everything through this position durable.
        case requestSync(through: UInt64)
        /// Log that writes work again after `failedWrites` failures (the last one's error).
        case logRecovered(failedWrites: Int, lastError: String)
        /// Log a failed write (the first of a run, then every thousandth).
        case logWriteFailed(error: String, failedWrites: Int)
        /// Tell the snapshot worker to drop the snapshot it is writing.
        case abandonSnapshot
    }

    /// How an append is acknowledged.
    public enum Acknowledgement: Equatable, Sendable {
        /// At once: the bytes are in the kernel.
        case now
        /// Once `durable(through:)` reports at least this position.
        case afterSync(through: UInt64)
    }

    /// A step of a snapshot's hand-over to the worker.
    public enum SnapshotStep: Equatable, Sendable {
        /// Copy these slots' durable states and send them.
        case states(Range<Int>)
        /// Every slot is handed over: tell the worker to finish the file.
        case finish
    }

    /// What `/metrics` reports.
    public struct Stats: Equatable, Sendable {
        public var unsyncedBytes: UInt64
        public var writeErrors: UInt64
        public var snapshots: UInt64
        public var snapshotFailures: UInt64
    }

    /// Used to size the live state before the first snapshot says better.
    public static let assumedBytesPerInstance = 160
    public static let snapshotRetryDelay: Duration = .seconds(60)
    /// Slots per hand-over step, and steps queued for the worker at most.
    public static let snapshotChunk = 1000
    public static let maxStepsInFlight = 16

    public let policy: Policy
    public let snapshotMinimumLogBytes: Int

    public private(set) var appended: UInt64 = 0
    private var syncRequested: UInt64 = 0
    public private(set) var durable: UInt64 = 0
    /// The highest change index the log holds.
    public private(set) var lastIndexWritten: UInt64
    /// Records a failed write owes the log, written first by the next write that works.
    public private(set) var owedRecords: [JournalEntry] = []
    /// The error of the failing run of writes; nil while writes work.
    public private(set) var writeFailure: String?
    private var failedWrites = 0
    private var writeErrors: UInt64 = 0

    private struct SnapshotRun: Equatable, Sendable {
        var cursor: Int
        let end: Int
        var inFlight: Int
        var finished: Bool
    }

    private var snapshot: SnapshotRun?
    private var nextSnapshotAttempt = Instant(nanoseconds: .min)
    public private(set) var bytesPerInstance = DurabilityMachine.assumedBytesPerInstance
    private var snapshotsWritten: UInt64 = 0
    private var snapshotFailures: UInt64 = 0

    public init(policy: Policy, snapshotMinimumLogBytes: Int, changeIndexOnDisk: UInt64) {
        self.policy = policy
        self.snapshotMinimumLogBytes = snapshotMinimumLogBytes
        self.lastIndexWritten = changeIndexOnDisk
    }

    public var stats: Stats {
        Stats(unsyncedBytes: appended - min(appended, durable), writeErrors: writeErrors, snapshots: snapshotsWritten,
              snapshotFailures: snapshotFailures)
    }

    public var isSnapshotting: Bool { snapshot != nil }

    // MARK: A turn's append

    /// Whether a turn with these changes has anything to append: changes, records owed by a
    /// failed write (retried only once writes work again, or by `everySecond`), or a change
    /// index that moved without a journal entry (expiry protection changes visible state only).
    public func hasWork(changes: Int, changeIndex: UInt64) -> Bool {
        changes > 0 || (writeFailure == nil && (changeIndex > lastIndexWritten || !owedRecords.isEmpty))
    }

    /// The records to append for a turn: what is owed first, then the turn's changes, then
    /// the change index when it moved past them.
    public func records(for changes: [JournalChange], changeIndex: UInt64) -> [JournalEntry] {
        var entries = owedRecords + changes.map(\.entry)
        if changeIndex > max(lastIndexWritten, entries.last?.changeIndex ?? 0) {
            entries.append(.indexAdvanced(to: changeIndex))
        }
        return entries
    }

    /// `records` reached the log (`byteCount` bytes).
    public mutating func appendSucceeded(_ records: [JournalEntry], byteCount: Int) -> (Acknowledgement, [Action]) {
        var actions: [Action] = []
        if let failure = writeFailure {
            actions.append(.logRecovered(failedWrites: failedWrites, lastError: failure))
            writeFailure = nil
            failedWrites = 0
        }
        owedRecords.removeAll()
        appended += UInt64(byteCount)
        lastIndexWritten = max(lastIndexWritten, records.last?.changeIndex ?? 0)
        guard policy == .always else { return (.now, actions) }
        if let sync = requestSync() { actions.append(sync) }
        return (.afterSync(through: appended), actions)
    }

    /// The append failed: nothing of it is in the file. The caller takes the turn's changes
    /// back in the registry and then calls `tookBack`.
    public mutating func appendFailed(error: String, now: Instant) -> [Action] {
        failedWrites += 1
        writeErrors += 1
        var actions: [Action] = []
        if writeFailure == nil || failedWrites % 1000 == 0 {
            actions.append(.logWriteFailed(error: error, failedWrites: failedWrites))
        }
        writeFailure = error
        // A snapshot still being handed over may already hold some of the changes taken back
        // and must not bring them back after a restart: it is abandoned, and tried later.
        if let run = snapshot, !run.finished {
            actions.append(.abandonSnapshot)
            snapshot = nil
            nextSnapshotAttempt = now + Self.snapshotRetryDelay
        }
        return actions
    }

    /// The registry has taken `changes` back (its change index is now `changeIndex`).
    /// Expiries stay done, so their records are owed; a snapshot already complete may hold
    /// the changes taken back, so records that undo them are owed too, in the log that is
    /// replayed after it.
    public mutating func tookBack(_ changes: [JournalChange], changeIndex: UInt64) {
        owedRecords += changes.filter(\.isExpiry).map(\.entry)
        guard let run = snapshot, run.finished else { return }
        for change in changes.reversed() where !change.isExpiry {
            if let prior = change.prior {
                owedRecords.append(.upsert(prior, changeIndex: changeIndex))
            } else if case .upsert(let state, _) = change.entry {
                owedRecords.append(.remove(service: state.service, id: state.id, changeIndex: changeIndex))
            }
        }
    }

    // MARK: Syncing

    private mutating func requestSync() -> Action? {
        guard appended > syncRequested else { return nil }
        syncRequested = appended
        return .requestSync(through: appended)
    }

    /// The sync worker made everything through `through` durable. Acknowledgements waiting
    /// for a position at most `durable` may now be given.
    public mutating func synced(through: UInt64) {
        durable = max(durable, through)
    }

    /// Once a second: the fsync of `everysec`, and whether owed records need a write of
    /// their own (no new change may come to carry them).
    public mutating func everySecond() -> (retryOwed: Bool, actions: [Action]) {
        var actions: [Action] = []
        if policy == .everysec, let sync = requestSync() { actions.append(sync) }
        return (!owedRecords.isEmpty, actions)
    }

    /// Before stopping: an fsync now, so that acknowledgements held under `always` are given
    /// while the loop still runs.
    public mutating func prepareToStop() -> [Action] {
        requestSync().map { [$0] } ?? []
    }

    /// A new log took over from position `appended`: the old one is retired (fsynced and
    /// closed) through it, so no separate sync of it is needed.
    public mutating func logRetired() {
        syncRequested = appended
    }

    // MARK: Snapshots

    /// Whether to start a snapshot: the log is at least `snapshotMinimumLogBytes` long and
    /// twice the size the live state would take, and no snapshot runs or failed recently.
    public func shouldSnapshot(logBytes: Int, liveInstances: Int, now: Instant) -> Bool {
        snapshot == nil && now >= nextSnapshotAttempt && logBytes >= snapshotMinimumLogBytes
            && logBytes >= 2 * liveInstances * bytesPerInstance
    }

    /// The next log could not be opened: try again later.
    public mutating func snapshotSkipped(now: Instant) {
        nextSnapshotAttempt = now + Self.snapshotRetryDelay
    }

    /// A snapshot began over the registry's `slotCount` slots: slots made later hold
    /// instances the new log has in full.
    public mutating func snapshotBegan(slotCount: Int) {
        snapshot = SnapshotRun(cursor: 0, end: slotCount, inFlight: 0, finished: false)
    }

    /// The next hand-over step, if one may be taken now (at most `maxStepsInFlight` queued).
    public mutating func nextSnapshotStep() -> SnapshotStep? {
        guard var run = snapshot, !run.finished, run.inFlight < Self.maxStepsInFlight else { return nil }
        defer { snapshot = run }
        if run.cursor < run.end {
            let upper = min(run.cursor + Self.snapshotChunk, run.end)
            defer { run.cursor = upper }
            run.inFlight += 1
            return .states(run.cursor..<upper)
        }
        run.finished = true
        return .finish
    }

    /// Whether another step should be scheduled (the hand-over is not finished and has room).
    public var wantsSnapshotStep: Bool {
        guard let run = snapshot else { return false }
        return !run.finished && run.inFlight < Self.maxStepsInFlight
    }

    /// The worker took `steps` steps off its queue.
    public mutating func snapshotStepsConsumed(_ steps: Int) {
        snapshot?.inFlight -= steps
    }

    public mutating func snapshotWritten(bytes: Int, instances: Int) {
        snapshotsWritten += 1
        if instances > 0 { bytesPerInstance = max(32, bytes / instances) }
        snapshot = nil
    }

    public mutating func snapshotFailed(now: Instant) {
        snapshotFailures += 1
        nextSnapshotAttempt = now + Self.snapshotRetryDelay
        snapshot = nil
    }

    /// After the loop: whether a snapshot is still being handed over (the worker must drop it).
    public var snapshotUnfinished: Bool { snapshot.map { !$0.finished } ?? false }
}
