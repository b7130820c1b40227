import Testing
@testable import Persistence
@testable import Registry

@Suite struct PersistenceTests {
    let wallOffset: Int64 = 1_800_000_000_000_000_000
    var now = Instant(nanoseconds: 10_000_000_000)

    private func journaling() -> Registry {
        Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), journaling: true))
    }

    /// A registry with some history: registrations with every field, an update, a status
    /// change, a deregistration and an expiry.
    private func history() -> (Registry, [JournalEntry]) {
        var registry = journaling()
        var clock = now
        _ = registry.register(service: "api", id: "i-1", address: "http://a:1",
                              fields: InstanceFields(tags: ["v2", "é"], metadata: [("k", "v")], weight: 7, zone: "z1",
                                                     status: .starting, ttl: .seconds(90)), now: clock)
        _ = registry.register(service: "api", address: "http://b:2", now: clock)
        _ = registry.register(service: "web", address: "w", fields: InstanceFields(ttl: .seconds(5)), now: clock)
        _ = registry.register(service: "gone", address: "g", now: clock)
        clock = clock + .seconds(1)
        _ = registry.setStatus(service: "api", id: "i-1", status: .up, now: clock)
        _ = registry.register(service: "api", address: "http://b:2", fields: InstanceFields(tags: ["x"]), now: clock)
        _ = registry.deregister(service: "gone", id: "g", now: clock)
        _ = registry.heartbeat(service: "api", id: "http://b:2", now: clock)
        clock = clock + .seconds(10)
        _ = registry.expireDue(now: clock, limit: 100)
        return (registry, registry.takeJournal().map(\.entry))
    }

    private func sorted(_ states: [InstanceState]) -> [InstanceState] {
        states.sorted { ($0.service, $0.id) < ($1.service, $1.id) }
    }

    @Test func crc32cMatchesTheStandardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test func everyEntryRoundTrips() throws {
        let (_, journal) = history()
        #expect(journal.count == 8)
        for entry in journal {
            let bytes = JournalCodec.encode(entry, wallOffset: wallOffset)
            #expect(try JournalCodec.decode(bytes[...], wallOffset: wallOffset) == entry)
        }
    }

    @Test func replayingTheJournalRebuildsTheState() throws {
        let (original, journal) = history()
        var restored = Registry(heartbeatTimeout: .seconds(30))
        let later = now + .seconds(3600)
        let report = try Recovery.replay(Recovery.frame(journal, wallOffset: wallOffset), into: &restored, now: later,
                                         wallOffset: wallOffset, repair: false)
        #expect(report.applied == journal.count)
        #expect(report.tornTailBytes == 0)
        #expect(sorted(restored.durableState()) == sorted(original.durableState()))
        #expect(report.lastChangeIndex == original.changeIndex)
        restored.finishRestore(changeIndex: report.lastChangeIndex, now: later)
        #expect(restored.changeIndex > original.changeIndex)
        // Restored instances get a full TTL from the moment of recovery.
        let instance = try #require(restored.instances(ofService: "api").first { $0.id == "i-1" })
        #expect(instance.deadline == later + .seconds(90))
        #expect(instance.registeredAt == now)
    }

    @Test func aSnapshotPlusTheLogEqualsTheLogAlone() throws {
        var registry = journaling()
        for index in 0..<20 { _ = registry.register(service: "s\(index % 3)", address: "a\(index)", now: now) }
        let firstPart = registry.takeJournal().map(\.entry)
        let snapshot = registry.durableState().map { JournalEntry.upsert($0, changeIndex: registry.changeIndex) }
        for index in 0..<20 where index % 4 == 0 { _ = registry.deregister(service: "s\(index % 3)", id: "a\(index)", now: now) }
        _ = registry.register(service: "s9", address: "late", now: now)
        let secondPart = registry.takeJournal().map(\.entry)

        var fromLog = Registry(heartbeatTimeout: .seconds(30))
        _ = try Recovery.replay(Recovery.frame(firstPart + secondPart, wallOffset: wallOffset), into: &fromLog, now: now,
                                wallOffset: wallOffset, repair: false)
        var fromSnapshot = Registry(heartbeatTimeout: .seconds(30))
        _ = try Recovery.replay(Recovery.frame(snapshot, wallOffset: wallOffset), into: &fromSnapshot, now: now,
                                wallOffset: wallOffset, repair: false)
        _ = try Recovery.replay(Recovery.frame(secondPart, wallOffset: wallOffset), into: &fromSnapshot, now: now,
                                wallOffset: wallOffset, repair: false)
        #expect(sorted(fromSnapshot.durableState()) == sorted(fromLog.durableState()))
        #expect(sorted(fromLog.durableState()) == sorted(registry.durableState()))
    }

    @Test(arguments: [1, 5, 8, 20])
    func aTornTailIsCutOff(cut: Int) throws {
        let (_, journal) = history()
        let bytes = Recovery.frame(journal, wallOffset: wallOffset)
        var restored = Registry(heartbeatTimeout: .seconds(30))
        let report = try Recovery.replay(Array(bytes.dropLast(cut)), into: &restored, now: now, wallOffset: wallOffset, repair: false)
        #expect(report.applied == journal.count - 1)
        #expect(report.tornTailBytes > 0)
        #expect(report.validLength == Recovery.frame(Array(journal.dropLast()), wallOffset: wallOffset).count)
    }

    @Test func damageBeforeTheTailStopsRecoveryUnlessRepaired() throws {
        let (_, journal) = history()
        var bytes = Recovery.frame(journal, wallOffset: wallOffset)
        let secondFrame = Recovery.frame([journal[0]], wallOffset: wallOffset).count
        bytes[secondFrame + 12] ^= 0x40
        var restored = Registry(heartbeatTimeout: .seconds(30))
        #expect(throws: Recovery.Damage(offset: secondFrame, reason: "checksum mismatch")) {
            try Recovery.replay(bytes, into: &restored, now: now, wallOffset: wallOffset, repair: false)
        }
        var repaired = Registry(heartbeatTimeout: .seconds(30))
        let report = try Recovery.replay(bytes, into: &repaired, now: now, wallOffset: wallOffset, repair: true)
        #expect(report.applied == 1)
        #expect(report.repairedBytes == bytes.count - secondFrame)
        #expect(repaired.instanceCount == 1)
    }

    @Test func aDamagedLengthInMidFileIsDamageNotATornTail() throws {
        let (_, journal) = history()
        var bytes = Recovery.frame(journal, wallOffset: wallOffset)
        let third = Recovery.frame(Array(journal.prefix(2)), wallOffset: wallOffset).count
        // The length now points past the end of the file; the checksum does not cover it.
        bytes[third + 2] = 0x05
        var restored = Registry(heartbeatTimeout: .seconds(30))
        #expect(throws: Recovery.Damage.self) {
            try Recovery.replay(bytes, into: &restored, now: now, wallOffset: wallOffset, repair: false)
        }
    }

    @Test func zerosAfterTheLastRecordAreATornTailZerosBeforeOneAreDamage() throws {
        let (_, journal) = history()
        let clean = Recovery.frame(journal, wallOffset: wallOffset)
        var restored = Registry(heartbeatTimeout: .seconds(30))
        let report = try Recovery.replay(clean + [UInt8](repeating: 0, count: 4096), into: &restored, now: now,
                                         wallOffset: wallOffset, repair: false)
        #expect(report.applied == journal.count)
        #expect(report.tornTailBytes == 4096)
        var again = Registry(heartbeatTimeout: .seconds(30))
        #expect(throws: Recovery.Damage.self) {
            try Recovery.replay([UInt8](repeating: 0, count: 16) + clean, into: &again, now: now, wallOffset: wallOffset, repair: false)
        }
    }

    @Test func aFlippedByteInTheLastRecordIsATornTail() throws {
        let (_, journal) = history()
        var bytes = Recovery.frame(journal, wallOffset: wallOffset)
        bytes[bytes.count - 3] ^= 0x01
        var restored = Registry(heartbeatTimeout: .seconds(30))
        let report = try Recovery.replay(bytes, into: &restored, now: now, wallOffset: wallOffset, repair: false)
        #expect(report.applied == journal.count - 1)
        #expect(report.tornTailBytes > 0)
    }

    @Test func heartbeatsAndUnchangedReRegistrationsAreNotJournaled() {
        var registry = journaling()
        _ = registry.register(service: "api", address: "a", now: now)
        _ = registry.takeJournal()
        _ = registry.heartbeat(service: "api", id: "a", now: now)
        _ = registry.register(service: "api", address: "a", now: now)
        #expect(registry.takeJournal().isEmpty)
        var plain = Registry(heartbeatTimeout: .seconds(30))
        _ = plain.register(service: "api", address: "a", now: now)
        #expect(plain.takeJournal().isEmpty)
    }
}
