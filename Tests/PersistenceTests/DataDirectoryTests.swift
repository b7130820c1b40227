import Foundation
import Testing
@testable import Persistence
@testable import Registry

/// Recovery from real files in a temporary directory.
@Suite final class DataDirectoryTests {
    let wallOffset: Int64 = 1_800_000_000_000_000_000
    let now = Instant(nanoseconds: 50_000_000_000)
    let path: String

    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("registry-data-\(UUID().uuidString)").path
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
        for extra in extras { try? FileManager.default.removeItem(atPath: extra) }
    }

    private var extras: [String] = []

    private func journaling() -> Registry {
        Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), journaling: true))
    }

    private func sorted(_ registry: Registry) -> [InstanceState] {
        registry.durableState().sorted { ($0.service, $0.id) < ($1.service, $1.id) }
    }

    /// Registers, updates and removes instances; returns the journal of each step.
    private func churn(_ registry: inout Registry, rounds: Range<Int>) -> [JournalEntry] {
        for round in rounds {
            _ = registry.register(service: "s\(round % 4)", address: "a\(round)",
                                  fields: InstanceFields(tags: ["t\(round % 3)"], metadata: [MetadataEntry("n", "\(round)")]), now: now)
            if round % 3 == 0 { _ = registry.setStatus(service: "s\(round % 4)", id: "a\(round)", status: .down, now: now) }
            if round % 5 == 0 && round > 0 { _ = registry.deregister(service: "s\((round - 1) % 4)", id: "a\(round - 1)", now: now) }
        }
        return registry.takeJournal().map(\.entry)
    }

    private func append(_ entries: [JournalEntry], to log: LogFile) throws {
        try log.append(Recovery.frame(entries, wallOffset: wallOffset))
    }

    private func load(repair: Bool = false) throws -> (Registry, Recovery.Loaded, (generation: UInt64, length: Int)) {
        let directory = try DataDirectory.open(path)
        var registry = Registry(heartbeatTimeout: .seconds(30))
        let (loaded, appendAt) = try Recovery.load(directory, into: &registry, now: now, wallOffset: wallOffset, repair: repair)
        return (registry, loaded, appendAt)
    }

    private func fileURL(_ name: String) -> URL { URL(fileURLWithPath: path).appendingPathComponent(name) }

    @Test func aSecondRegistryCannotTakeTheDirectory() throws {
        let first = try DataDirectory.open(path)
        #expect(throws: StorageError.self) { try DataDirectory.open(path) }
        do {
            _ = try DataDirectory.open(path)
        } catch {
            #expect(error.message.contains("in use by another registry (pid \(getpid()))"))
        }
        _ = first
    }

    @Test func theLockIsFreedWhenTheOwnerCloses() throws {
        do { _ = try DataDirectory.open(path) }
        _ = try DataDirectory.open(path)
    }

    @Test func snapshotPlusLogEqualsTheLogAlone() throws {
        var original = journaling()
        let first = churn(&original, rounds: 0..<40)
        let atSnapshot = original
        let second = churn(&original, rounds: 40..<90)

        // The log alone, in one directory.
        let logOnly = FileManager.default.temporaryDirectory.appendingPathComponent("registry-log-\(UUID().uuidString)").path
        extras.append(logOnly)
        do {
            let directory = try DataDirectory.open(logOnly)
            let log = try directory.openLog(generation: 1)
            try append(first + second, to: log)
        }
        // A snapshot at the rotation plus the second log, in another.
        do {
            let directory = try DataDirectory.open(path)
            let log = try directory.openLog(generation: 1)
            try append(first, to: log)
            let next = try directory.openLog(generation: 2)
            try append(second, to: next)
            let written = try SnapshotWriter.write(atSnapshot, generation: 2, to: directory, wallOffset: wallOffset)
            #expect(written.instances == atSnapshot.instanceCount)
            // The snapshot replaces log 1.
            #expect(try directory.fileNames() == ["log-000000000002.log", "snapshot-000000000002.snap"])
        }
        let (fromSnapshot, loaded, appendAt) = try load()
        #expect(loaded.snapshot?.generation == 2)
        #expect(loaded.logs.map(\.generation) == [2])
        #expect(appendAt.generation == 2)

        let directory = try DataDirectory.open(logOnly)
        var fromLog = Registry(heartbeatTimeout: .seconds(30))
        let (logLoaded, _) = try Recovery.load(directory, into: &fromLog, now: now, wallOffset: wallOffset, repair: false)
        #expect(logLoaded.snapshot == nil)
        #expect(sorted(fromSnapshot) == sorted(fromLog))
        #expect(sorted(fromLog) == sorted(original))
        #expect(loaded.lastChangeIndex == original.changeIndex)
        #expect(logLoaded.lastChangeIndex == original.changeIndex)
    }

    /// The snapshot is handed over in steps while the registry keeps changing; the log begun
    /// with it makes the result exact.
    @Test func aSnapshotTakenWhileTheRegistryChangesIsExactWithItsLog() throws {
        var registry = journaling()
        let before = churn(&registry, rounds: 0..<60)
        do {
            let directory = try DataDirectory.open(path)
            try append(before, to: try directory.openLog(generation: 1))
            let log = try directory.openLog(generation: 2)
            let session = SnapshotSession()
            _ = session.handle([.begin(directory: directory, generation: 2, changeIndex: registry.changeIndex, wallOffset: wallOffset)])
            let end = registry.slotCount
            var cursor = 0
            var round = 60
            while cursor < end {
                _ = session.handle([.states(registry.durableStates(inSlots: cursor..<min(cursor + 7, end)))])
                cursor += 7
                // Changes between steps: new instances, updates and removals of instances
                // already handed over and of ones not yet.
                try append(churn(&registry, rounds: round..<(round + 5)), to: log)
                _ = registry.deregister(service: "s\(cursor % 4)", id: "a\(cursor)", now: now)
                _ = registry.setStatus(service: "s\((cursor + 20) % 4)", id: "a\(cursor + 20)", status: .outOfService, now: now)
                try append(registry.takeJournal().map(\.entry), to: log)
                round += 5
            }
            let outcomes = session.handle([.finish])
            guard case .written(let written)? = outcomes.last else {
                Issue.record("no snapshot written: \(outcomes)")
                return
            }
            #expect(written.generation == 2)
        }
        let (restored, loaded, _) = try load()
        #expect(loaded.snapshot?.generation == 2)
        #expect(sorted(restored) == sorted(registry))
        #expect(try FileManager.default.contentsOfDirectory(atPath: path).sorted() == ["LOCK", "log-000000000002.log", "snapshot-000000000002.snap"])
    }

    @Test func aTornTailIsReportedAndAppendingContinuesBeforeIt() throws {
        var original = journaling()
        let entries = churn(&original, rounds: 0..<10)
        let whole = Recovery.frame(entries, wallOffset: wallOffset)
        do {
            let directory = try DataDirectory.open(path)
            let log = try directory.openLog(generation: 1)
            try log.append(Array(whole.dropLast(5)))
        }
        let (registry, loaded, appendAt) = try load()
        let torn = try #require(loaded.tornTails.first)
        #expect(torn.file.hasSuffix("log-000000000001.log"))
        #expect(appendAt.length == Recovery.frame(Array(entries.dropLast()), wallOffset: wallOffset).count)
        #expect(torn.offset == appendAt.length)
        #expect(registry.changeIndex == entries.dropLast().last?.changeIndex)
        // The bytes that are cut off are kept.
        #expect(torn.keptAs.hasSuffix("log-000000000001.log.torn-\(appendAt.length).damaged"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: torn.keptAs)) == Data(whole[appendAt.length..<(whole.count - 5)]))
        // Cutting the tail and appending gives a clean log again.
        let directory = try DataDirectory.open(path)
        let log = try directory.openLog(generation: 1, truncatingTo: appendAt.length)
        #expect(log.length == appendAt.length)
        try append([entries.last!], to: log)
        log.close()
        _ = directory
    }

    /// The machine went down while the logs rotated: the old log's last records were not yet
    /// on disk while the new log's first ones were. Both tails are cut, nothing is refused.
    @Test func aTornTailInAnOlderLogIsCutToo() throws {
        var original = journaling()
        let first = churn(&original, rounds: 0..<10)
        let second = churn(&original, rounds: 10..<20)
        do {
            let directory = try DataDirectory.open(path)
            try directory.openLog(generation: 1).append(Array(Recovery.frame(first, wallOffset: wallOffset).dropLast(7)))
            try append(second, to: try directory.openLog(generation: 2))
        }
        let (_, loaded, appendAt) = try load()
        #expect(loaded.tornTails.map(\.generation) == [1])
        #expect(loaded.repairs.isEmpty)
        #expect(appendAt.generation == 2)
        #expect(loaded.logs.map(\.records) == [first.count - 1, second.count])
    }

    @Test func damageIsRefusedWithFileAndOffsetThenRepaired() throws {
        var original = journaling()
        let entries = churn(&original, rounds: 0..<20)
        var bytes = Recovery.frame(entries, wallOffset: wallOffset)
        let offset = Recovery.frame(Array(entries.prefix(5)), wallOffset: wallOffset).count
        bytes[offset + 10] ^= 0x20
        do {
            let directory = try DataDirectory.open(path)
            let log = try directory.openLog(generation: 1)
            try log.append(bytes)
            let later = try directory.openLog(generation: 2)
            try append(churn(&original, rounds: 20..<25), to: later)
        }
        let nextRecord = Recovery.frame(Array(entries.prefix(6)), wallOffset: wallOffset).count
        do {
            _ = try load()
            Issue.record("damage was not refused")
        } catch let error as StorageError {
            #expect(error.message.contains("log-000000000001.log is damaged at byte \(offset) of \(bytes.count) (checksum mismatch); "
                + "the next valid record starts at byte \(nextRecord), \(nextRecord - offset) bytes later"))
            #expect(error.message.contains("--repair"))
        }
        let (repaired, loaded, _) = try load(repair: true)
        let report = try #require(loaded.repairs.first)
        #expect(loaded.repairs.count == 1)
        #expect(report.file.hasSuffix("log-000000000001.log"))
        #expect(report.keptRecords == entries.count - 1)
        #expect(report.skippedRegions == [Recovery.SkippedRegion(offset: offset, length: nextRecord - offset, reason: "checksum mismatch")])
        // Everything but the damaged record, and the later log in full.
        var expected = Registry(heartbeatTimeout: .seconds(30))
        let surviving = Array(entries.prefix(5)) + Array(entries.dropFirst(6))
        _ = try Recovery.replay(Recovery.frame(surviving, wallOffset: wallOffset), into: &expected, now: now,
                                wallOffset: wallOffset, repair: false)
        _ = try Recovery.replay(try Array(Data(contentsOf: fileURL("log-000000000002.log"))), into: &expected, now: now,
                                wallOffset: wallOffset, repair: false)
        #expect(sorted(repaired) == sorted(expected))
        #expect(FileManager.default.fileExists(atPath: fileURL("log-000000000001.log.damaged").path))
    }

    /// A record a newer registry wrote is not damage: start-up is refused with what to run,
    /// and `--repair` does not drop it either.
    @Test func aNewerRecordFormatIsRefusedEvenWithRepair() throws {
        var original = journaling()
        let entries = churn(&original, rounds: 0..<5)
        var newer = JournalCodec.encode(entries[0], wallOffset: wallOffset)
        newer[1] = JournalCodec.currentFormat + 1
        var framed = ByteWriter()
        Frames.appendFrame(to: &framed) { $0.bytes.append(contentsOf: newer) }
        do {
            let directory = try DataDirectory.open(path)
            try directory.openLog(generation: 1).append(Recovery.frame(Array(entries.dropFirst()), wallOffset: wallOffset) + framed.bytes)
        }
        for repair in [false, true] {
            do {
                _ = try load(repair: repair)
                Issue.record("a newer format was loaded (repair: \(repair))")
            } catch let error as StorageError {
                #expect(error.message.contains("written by a newer registry"), "\(error.message)")
                #expect(error.message.contains("--repair would drop those records"))
            }
        }
    }

    @Test func aDamagedSnapshotIsRefused() throws {
        var original = journaling()
        _ = churn(&original, rounds: 0..<30)
        do {
            let directory = try DataDirectory.open(path)
            _ = try directory.openLog(generation: 3)
            _ = try SnapshotWriter.write(original, generation: 3, to: directory, wallOffset: wallOffset)
        }
        let name = DataDirectory.snapshotName(3)
        var bytes = try Data(contentsOf: fileURL(name))
        bytes.removeLast(bytes.count / 3)
        try bytes.write(to: fileURL(name))
        #expect(throws: StorageError.self) { try load() }
        let (repaired, loaded, _) = try load(repair: true)
        #expect(loaded.repairs.first?.file.hasSuffix(name) == true)
        #expect(repaired.instanceCount < original.instanceCount)
        #expect(repaired.instanceCount > 0)
    }

    @Test func aFailedAppendLeavesTheFileAsItWas() throws {
        let directory = try DataDirectory.open(path)
        let log = try directory.openLog(generation: 1)
        try log.append([1, 2, 3])
        // Closing the descriptor underneath makes the next write fail (EBADF).
        log.close()
        #expect(throws: StorageError.self) { try log.append([4, 5, 6]) }
        #expect(log.length == 3)
    }
}

extension FileManager {
    fileprivate func contentsOfFile(_ url: URL) -> Int {
        (try? attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
    }
}
