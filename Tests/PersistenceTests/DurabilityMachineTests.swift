import Persistence
import Registry
import Testing

/// The local log's decisions on a fake clock, with no file and no thread: group commit,
/// what a failed write owes, and the snapshot hand-over.
@Suite struct DurabilityMachineTests {
    private let start = Instant(nanoseconds: 1_000_000_000)

    private func state(_ id: String, port: Int = 80) -> InstanceState {
        InstanceState(service: "api", id: id, attributes: InstanceAttributes(address: "http://\(id):\(port)"), registeredAt: Instant(nanoseconds: 0))
    }

    private func upsert(_ id: String, index: UInt64, prior: InstanceState? = nil, expiry: Bool = false) -> JournalChange {
        JournalChange(.upsert(state(id), changeIndex: index), prior: prior, isExpiry: expiry)
    }

    private func removal(_ id: String, index: UInt64, prior: InstanceState, expiry: Bool) -> JournalChange {
        JournalChange(.remove(service: "api", id: id, changeIndex: index), prior: prior, isExpiry: expiry)
    }

    @Test func alwaysAcknowledgesOnlyWhatAnFsyncCovers() {
        var machine = DurabilityMachine(policy: .always, snapshotMinimumLogBytes: 1 << 30, changeIndexOnDisk: 0)
        // Three turns written while the first fsync runs: each asks for one through its end.
        var tickets: [UInt64] = []
        for (turn, size) in [100, 40, 60].enumerated() {
            let records = machine.records(for: [upsert("a\(turn)", index: UInt64(turn + 2))], changeIndex: UInt64(turn + 2))
            let (acknowledgement, actions) = machine.appendSucceeded(records, byteCount: size)
            guard case .afterSync(let through) = acknowledgement else {
                Issue.record("turn \(turn) was acknowledged before an fsync")
                return
            }
            tickets.append(through)
            #expect(actions == [.requestSync(through: through)])
        }
        #expect(tickets == [100, 140, 200])
        #expect(machine.stats.unsyncedBytes == 200)
        // The worker's one fsync for the queued requests covers all three: group commit.
        machine.synced(through: 140)
        #expect(machine.durable == 140)
        #expect(tickets.filter { $0 <= machine.durable } == [100, 140])
        machine.synced(through: 200)
        #expect(machine.stats.unsyncedBytes == 0)
        // An fsync reported late never moves durability back.
        machine.synced(through: 100)
        #expect(machine.durable == 200)
    }

    @Test func everysecAndNeverAcknowledgeOnceWritten() {
        for policy in [DurabilityMachine.Policy.everysec, .never] {
            var machine = DurabilityMachine(policy: policy, snapshotMinimumLogBytes: 1 << 30, changeIndexOnDisk: 0)
            let (acknowledgement, actions) = machine.appendSucceeded(machine.records(for: [upsert("a", index: 2)], changeIndex: 2),
                                                                     byteCount: 50)
            #expect(acknowledgement == .now)
            #expect(actions.isEmpty)
            let (_, second) = machine.everySecond()
            #expect(second == (policy == .everysec ? [.requestSync(through: 50)] : []))
            // Nothing new: no second request for the same bytes.
            #expect(machine.everySecond().actions.isEmpty)
        }
    }

    @Test func anIndexThatMovedWithoutAChangeIsWrittenAsARecord() {
        let machine = DurabilityMachine(policy: .everysec, snapshotMinimumLogBytes: 1 << 30, changeIndexOnDisk: 7)
        #expect(!machine.hasWork(changes: 0, changeIndex: 7))
        #expect(machine.hasWork(changes: 0, changeIndex: 9))
        #expect(machine.records(for: [], changeIndex: 9) == [.indexAdvanced(to: 9)])
        // A change that carries the index needs no record of its own.
        #expect(machine.records(for: [upsert("a", index: 9)], changeIndex: 9) == [.upsert(state("a"), changeIndex: 9)])
    }

    @Test func aFailedWriteOwesItsExpiriesAndIsLoggedOncePerRun() {
        var machine = DurabilityMachine(policy: .always, snapshotMinimumLogBytes: 1 << 30, changeIndexOnDisk: 1)
        let expired = removal("old", index: 2, prior: state("old"), expiry: true)
        let registered = upsert("new", index: 3)
        #expect(machine.appendFailed(error: "No space left on device", now: start)
            == [.logWriteFailed(error: "No space left on device", failedWrites: 1)])
        machine.tookBack([expired, registered], changeIndex: 4)
        // The registration is taken back; the expiry stays done, so the log owes its record.
        #expect(machine.owedRecords == [expired.entry])
        // While writes fail, a turn with nothing new does not try the disk again; the
        // once-a-second retry does.
        #expect(!machine.hasWork(changes: 0, changeIndex: 4))
        #expect(machine.everySecond().retryOwed)
        #expect(machine.appendFailed(error: "No space left on device", now: start).isEmpty)
        // The next write that works carries the owed record first, and says writes recovered.
        let records = machine.records(for: [upsert("new", index: 5)], changeIndex: 5)
        #expect(records == [expired.entry, .upsert(state("new"), changeIndex: 5)])
        let (_, actions) = machine.appendSucceeded(records, byteCount: 120)
        #expect(actions.first == .logRecovered(failedWrites: 2, lastError: "No space left on device"))
        #expect(machine.owedRecords.isEmpty)
        #expect(machine.writeFailure == nil)
        #expect(machine.stats.writeErrors == 2)
    }

    @Test func snapshotsAreHandedOverInBoundedStepsWithAtMostSixteenQueued() {
        var machine = DurabilityMachine(policy: .everysec, snapshotMinimumLogBytes: 1000, changeIndexOnDisk: 0)
        #expect(!machine.shouldSnapshot(logBytes: 999, liveInstances: 0, now: start))
        // Twice the live state's size is needed too (160 bytes per instance until measured).
        #expect(!machine.shouldSnapshot(logBytes: 5000, liveInstances: 100, now: start))
        #expect(machine.shouldSnapshot(logBytes: 40_000, liveInstances: 100, now: start))
        machine.snapshotBegan(slotCount: 20_500)
        #expect(!machine.shouldSnapshot(logBytes: 40_000, liveInstances: 100, now: start))
        var steps: [DurabilityMachine.SnapshotStep] = []
        while let step = machine.nextSnapshotStep() { steps.append(step) }
        #expect(steps.count == DurabilityMachine.maxStepsInFlight)
        #expect(steps.first == .states(0..<1000))
        #expect(!machine.wantsSnapshotStep)
        machine.snapshotStepsConsumed(16)
        while let step = machine.nextSnapshotStep() { steps.append(step) }
        #expect(steps.last == .finish)
        #expect(steps.dropLast().last == .states(20_000..<20_500))
        #expect(steps.count == 22)
        machine.snapshotWritten(bytes: 64_000, instances: 1000)
        #expect(machine.bytesPerInstance == 64)
        #expect(!machine.isSnapshotting)
        #expect(machine.stats.snapshots == 1)
    }

    @Test func aWriteFailingDuringTheHandOverAbandonsTheSnapshotForAMinute() {
        var machine = DurabilityMachine(policy: .everysec, snapshotMinimumLogBytes: 0, changeIndexOnDisk: 0)
        machine.snapshotBegan(slotCount: 5000)
        _ = machine.nextSnapshotStep()
        // The snapshot may already hold the change being taken back: it must not survive.
        let actions = machine.appendFailed(error: "Input/output error", now: start)
        #expect(actions.contains(.abandonSnapshot))
        #expect(!machine.isSnapshotting)
        machine.tookBack([upsert("a", index: 2)], changeIndex: 3)
        #expect(machine.owedRecords.isEmpty)
        #expect(!machine.shouldSnapshot(logBytes: 1 << 20, liveInstances: 1, now: start + .seconds(59)))
        #expect(machine.shouldSnapshot(logBytes: 1 << 20, liveInstances: 1, now: start + .seconds(60)))
    }

    @Test func aWriteFailingAfterTheHandOverIsUndoneInTheNextLog() {
        var machine = DurabilityMachine(policy: .everysec, snapshotMinimumLogBytes: 0, changeIndexOnDisk: 0)
        machine.snapshotBegan(slotCount: 10)
        #expect(machine.nextSnapshotStep() == .states(0..<10))
        #expect(machine.nextSnapshotStep() == .finish)
        // Complete, so not abandoned: what it may hold of the failed turn is undone by records
        // in the log replayed after it: the prior state back, a new instance removed.
        #expect(!machine.appendFailed(error: "Input/output error", now: start).contains(.abandonSnapshot))
        let changed = JournalChange(.upsert(state("a", port: 81), changeIndex: 5), prior: state("a"))
        let added = upsert("b", index: 6)
        machine.tookBack([changed, added], changeIndex: 7)
        #expect(machine.owedRecords == [.remove(service: "api", id: "b", changeIndex: 7), .upsert(state("a"), changeIndex: 7)])
    }

    @Test func aFailedSnapshotIsRetriedAfterAMinute() {
        var machine = DurabilityMachine(policy: .never, snapshotMinimumLogBytes: 0, changeIndexOnDisk: 0)
        machine.snapshotBegan(slotCount: 1)
        machine.snapshotFailed(now: start)
        #expect(machine.stats.snapshotFailures == 1)
        #expect(!machine.shouldSnapshot(logBytes: 100, liveInstances: 0, now: start + .seconds(30)))
        #expect(machine.shouldSnapshot(logBytes: 100, liveInstances: 0, now: start + .seconds(61)))
        machine.snapshotSkipped(now: start + .seconds(61))
        #expect(!machine.shouldSnapshot(logBytes: 100, liveInstances: 0, now: start + .seconds(62)))
    }

    @Test func stoppingAsksForOneLastFsync() {
        var machine = DurabilityMachine(policy: .always, snapshotMinimumLogBytes: 1 << 30, changeIndexOnDisk: 0)
        #expect(machine.prepareToStop().isEmpty)
        _ = machine.appendSucceeded([.indexAdvanced(to: 3)], byteCount: 30)
        // The append asked already; a retired log counts as synced through its end.
        #expect(machine.prepareToStop().isEmpty)
        var everysec = DurabilityMachine(policy: .everysec, snapshotMinimumLogBytes: 1 << 30, changeIndexOnDisk: 0)
        _ = everysec.appendSucceeded([.indexAdvanced(to: 3)], byteCount: 30)
        #expect(everysec.prepareToStop() == [.requestSync(through: 30)])
        everysec.logRetired()
        _ = everysec.appendSucceeded([.indexAdvanced(to: 4)], byteCount: 10)
        #expect(everysec.prepareToStop() == [.requestSync(through: 40)])
    }
}
