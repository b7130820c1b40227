import Foundation
import Testing
import TestSupport
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
                              fields: InstanceFields(tags: ["v2", "é"], metadata: [MetadataEntry("k", "v")], weight: 7, zone: "z1",
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

    @Test func recordsOfFormatsOneAndTwoAreStillRead() throws {
        let (_, journal) = history()
        for entry in journal {
            let old = JournalCodec.encodeFormat1(entry, wallOffset: wallOffset)
            let two = JournalCodec.encodeFormat2(entry, wallOffset: wallOffset)
            #expect(try JournalCodec.decode(old[...], wallOffset: wallOffset) == entry)
            #expect(try JournalCodec.decode(two[...], wallOffset: wallOffset) == entry)
            #expect(old.count + 1 == two.count)
            if case .upsert = entry { #expect(two.count + 4 == JournalCodec.encode(entry, wallOffset: wallOffset).count) }
        }
    }

    /// Format 3's checks and an instance without a heartbeat timeout, every kind of probe and
    /// every optional part, round-trip exactly; a truncated one is refused, never misread.
    @Test func checksAndNoExpiryRoundTrip() throws {
        let checks = [
            HealthCheck(id: "service:a", name: "HTTP on /health",
                        probe: .http(.init(url: "https://[::1]:8443/health?x=1", method: "HEAD",
                                           headers: [MetadataEntry("X-Token", "s3cr\u{e9}t"), MetadataEntry("Accept", "*/*")],
                                           tlsSkipVerify: true)),
                        interval: .seconds(10), timeout: .milliseconds(1500), deregisterAfter: .seconds(30), status: .warning),
            HealthCheck(id: "tcp", probe: .tcp(host: "db.internal", port: 5432), interval: .seconds(5), status: .passing),
            HealthCheck(id: "service:a:2", probe: .ttl(.seconds(15)), deregisterAfter: .seconds(90)),
        ]
        let state = InstanceState(service: "api", id: "a",
                                  attributes: InstanceAttributes(address: "http://10.0.0.1:80", ttl: InstanceAttributes.noExpiry, checks: checks),
                                  registeredAt: now)
        let entry = JournalEntry.upsert(state, changeIndex: 9)
        let bytes = JournalCodec.encode(entry, wallOffset: wallOffset)
        #expect(try JournalCodec.decode(bytes[...], wallOffset: wallOffset) == entry)
        for cut in stride(from: 1, to: bytes.count, by: 7) {
            #expect(throws: (any Error).self) { try JournalCodec.decode(bytes[..<cut], wallOffset: wallOffset) }
        }
    }

    @Test func aRecordOfANewerFormatIsRefusedAsSuchNotAsDamage() throws {
        let (_, journal) = history()
        var newer = JournalCodec.encode(journal[0], wallOffset: wallOffset)
        newer[1] = JournalCodec.currentFormat + 1
        var bytes = Recovery.frame(Array(journal.dropFirst()), wallOffset: wallOffset)
        var framed = ByteWriter()
        Frames.appendFrame(to: &framed) { $0.bytes.append(contentsOf: newer) }
        bytes = framed.bytes + bytes
        var registry = Registry(heartbeatTimeout: .seconds(30))
        do {
            _ = try Recovery.replay(bytes, into: &registry, now: now, wallOffset: wallOffset, repair: false)
            Issue.record("a newer record was read")
        } catch {
            #expect(error.isNewerFormat)
            #expect(error.reason.contains("written by a newer registry"))
        }
    }

    /// A restart with narrower TTL bounds keeps every instance, its TTL brought within them.
    @Test func aNarrowerTTLRangeAtRestartKeepsTheInstances() throws {
        let (original, journal) = history()
        var narrower = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), minimumTTL: .seconds(10), maximumTTL: .seconds(60)))
        let report = try Recovery.replay(Recovery.frame(journal, wallOffset: wallOffset), into: &narrower, now: now,
                                         wallOffset: wallOffset, repair: false)
        #expect(report.skipped.isEmpty)
        #expect(narrower.instanceCount == original.instanceCount)
        let ttls = Dictionary(uniqueKeysWithValues: narrower.durableState().map { ($0.id, $0.attributes.ttl) })
        #expect(ttls["i-1"] == .seconds(60))
        #expect(ttls["http://b:2"] == .some(nil))
        // Below the new minimum, brought up to it.
        var higher = Registry(policy: RegistryPolicy(heartbeatTimeout: .seconds(30), minimumTTL: .seconds(120), maximumTTL: .seconds(600)))
        _ = try Recovery.replay(Recovery.frame(journal, wallOffset: wallOffset), into: &higher, now: now, wallOffset: wallOffset, repair: false)
        #expect(higher.durableState().first { $0.id == "i-1" }?.attributes.ttl == .seconds(120))
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
        let instance = try #require(restored.instances(ofService: "api", now: later).first { $0.id == "i-1" })
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

    @Test func damageBeforeTheTailStopsRecoveryUnlessRepairedWhichKeepsEveryValidRecord() throws {
        let (original, journal) = history()
        var bytes = Recovery.frame(journal, wallOffset: wallOffset)
        let secondFrame = Recovery.frame([journal[0]], wallOffset: wallOffset).count
        let thirdFrame = Recovery.frame(Array(journal.prefix(2)), wallOffset: wallOffset).count
        bytes[secondFrame + 12] ^= 0x40
        var restored = Registry(heartbeatTimeout: .seconds(30))
        #expect(throws: Recovery.Damage(offset: secondFrame, reason: "checksum mismatch", nextValid: thirdFrame)) {
            try Recovery.replay(bytes, into: &restored, now: now, wallOffset: wallOffset, repair: false)
        }
        var repaired = Registry(heartbeatTimeout: .seconds(30))
        let report = try Recovery.replay(bytes, into: &repaired, now: now, wallOffset: wallOffset, repair: true)
        #expect(report.applied == journal.count - 1)
        #expect(report.skippedRegions == [Recovery.SkippedRegion(offset: secondFrame, length: thirdFrame - secondFrame,
                                                                 reason: "checksum mismatch")])
        // Only the second record (http://b:2's registration) is lost; its later update
        // brings it back.
        #expect(sorted(repaired.durableState()).map(\.id) == sorted(original.durableState()).map(\.id))
    }

    /// A valid frame whose change index no registry could have reached (a crafted file) is
    /// refused like damage; it must never become an index that traps when it next moves.
    @Test func aChangeIndexPastTheAPIsBoundIsRefusedAsDamage() throws {
        let (_, journal) = history()
        for huge in [UInt64.max, UInt64.max - 1, JournalCodec.maxChangeIndex + 1] {
            let crafted = Recovery.frame([journal[0]], wallOffset: wallOffset) + Recovery.frame([.indexAdvanced(to: huge)], wallOffset: wallOffset)
                + Recovery.frame(Array(journal.dropFirst()), wallOffset: wallOffset)
            var restored = Registry(heartbeatTimeout: .seconds(30))
            do {
                _ = try Recovery.replay(crafted, into: &restored, now: now, wallOffset: wallOffset, repair: false)
                Issue.record("index \(huge) was accepted")
            } catch {
                #expect(error.reason.contains("past the largest a registry writes"), "\(error.reason)")
            }
            var repaired = Registry(heartbeatTimeout: .seconds(30))
            let report = try Recovery.replay(crafted, into: &repaired, now: now, wallOffset: wallOffset, repair: true)
            #expect(report.applied == journal.count)
            #expect(report.lastChangeIndex <= JournalCodec.maxChangeIndex)
        }
        var atBound = Registry(heartbeatTimeout: .seconds(30))
        let bound = Recovery.frame([.indexAdvanced(to: JournalCodec.maxChangeIndex)], wallOffset: wallOffset)
        #expect(try Recovery.replay(bound, into: &atBound, now: now, wallOffset: wallOffset, repair: false).lastChangeIndex
            == JournalCodec.maxChangeIndex)
    }

    /// A repair salvages every valid record however much damage there is and wherever it
    /// is: one bad record in the middle of thousands costs that record only.
    @Test func oneFlippedByteInALargeLogCostsOneRecord() throws {
        var registry = journaling()
        for index in 0..<5_000 {
            _ = registry.register(service: "s\(index % 50)", address: "http://10.0.\(index / 250).\(index % 250):80",
                                  fields: InstanceFields(tags: ["t\(index % 7)"]), now: now)
        }
        let journal = registry.takeJournal().map(\.entry)
        var bytes = Recovery.frame(journal, wallOffset: wallOffset)
        bytes[bytes.count / 2] ^= 0x01
        var restored = Registry(heartbeatTimeout: .seconds(30))
        do {
            _ = try Recovery.replay(bytes, into: &restored, now: now, wallOffset: wallOffset, repair: false)
            Issue.record("the damage was not noticed")
        } catch {
            let next = try #require(error.nextValid)
            #expect(next > error.offset && next - error.offset < 200)
        }
        var repaired = Registry(heartbeatTimeout: .seconds(30))
        let report = try Recovery.replay(bytes, into: &repaired, now: now, wallOffset: wallOffset, repair: true)
        #expect(report.applied == journal.count - 1)
        #expect(report.skippedRegions.count == 1)
        #expect(repaired.instanceCount == 4_999)
    }

    /// Garbage of any size, anywhere: never a torn tail unless it fits in one record and is
    /// at the very end; the search for the next valid record is linear (9 MB took 15.6 s when
    /// it was cubic).
    @Test(arguments: [0, 1])
    func largeGarbageIsDamageNeverATornTail(validRecords: Int) throws {
        let (_, journal) = history()
        let valid = Recovery.frame(Array(journal.prefix(validRecords)), wallOffset: wallOffset)
        var random = SplitMix64(state: 3)
        for size in [3_000_000, 9_000_000] {
            let bytes = valid + random.bytes(size)
            var restored = Registry(heartbeatTimeout: .seconds(30))
            #expect(throws: Recovery.Damage.self) {
                try Recovery.replay(bytes, into: &restored, now: now, wallOffset: wallOffset, repair: false)
            }
            var repaired = Registry(heartbeatTimeout: .seconds(30))
            let report = try Recovery.replay(bytes, into: &repaired, now: now, wallOffset: wallOffset, repair: true)
            #expect(report.applied == validRecords)
            #expect(report.skippedRegions.map(\.length).reduce(0, +) == size)
        }
    }

    /// The torn-tail rule at its edges: one partial record up to the longest the server can
    /// write, then zeros, is torn; a byte more, or a valid record after it, is damage.
    @Test func aTornTailIsAtMostOneRecordThenZeros() throws {
        let (_, journal) = history()
        let valid = Recovery.frame(journal, wallOffset: wallOffset)
        let longest = Frames.maxFrameBytes
        func header(_ length: Int) -> [UInt8] {
            withUnsafeBytes(of: UInt32(length).littleEndian) { Array($0) } + [0xAA, 0xBB, 0xCC, 0xDD]
        }
        func ending(_ tail: [UInt8]) -> String {
            var restored = Registry(heartbeatTimeout: .seconds(30))
            do {
                let report = try Recovery.replay(valid + tail, into: &restored, now: now, wallOffset: wallOffset, repair: false)
                return report.tornTailBytes == tail.count ? "torn" : "other"
            } catch {
                return "damaged"
            }
        }
        var random = SplitMix64(state: 11)
        let partialOfLongest = header(Frames.maxPayloadBytes) + random.bytes(longest - 8 - 1)
        #expect(ending(partialOfLongest) == "torn")
        #expect(ending(partialOfLongest + [UInt8](repeating: 0, count: 1 << 20)) == "torn")
        #expect(ending(header(100) + random.bytes(50)) == "torn")
        #expect(ending([0x07, 0x00]) == "torn")
        // The frame claims fewer bytes than follow it: not one partial record.
        #expect(ending(header(100) + random.bytes(200)) == "damaged")
        #expect(ending(header(Frames.maxPayloadBytes + 1) + random.bytes(10)) == "damaged")
        #expect(ending(random.bytes(longest + 1)) == "damaged")
        // Non-zero bytes after the zeros: damage.
        #expect(ending(header(100) + [UInt8](repeating: 0, count: 100) + [1]) == "damaged")
        // A valid record after a short bad stretch: damage, not a tear.
        #expect(ending(header(20) + [1, 2, 3] + Recovery.frame([journal[0]], wallOffset: wallOffset)) == "damaged")
    }

    @Test func theChecksumOfAnySliceComesFromTwoPrefixStates() {
        var random = SplitMix64(state: 5)
        let bytes = random.bytes(4096)
        var states: [UInt32] = []
        bytes.withUnsafeBytes { CRC32C.prefixStates($0, into: &states) }
        let shifts = CRC32C.byteShifts(count: 4097)
        var generator = SplitMix64(state: 6)
        for _ in 0..<500 {
            let a = Int(generator.next() % 4096)
            let b = a + Int(generator.next() % UInt64(4096 - a + 1))
            let direct = bytes[a..<b].withUnsafeBytes { CRC32C.checksum($0) }
            let combined = CRC32C.multiply(shifts[b - a], 0xFFFF_FFFF ^ states[a]) ^ states[b] ^ 0xFFFF_FFFF
            #expect(combined == direct, "slice \(a)..<\(b)")
        }
    }

    @Test func theLongestRecordTheRulesAllowFitsTheBound() throws {
        let wide = String(repeating: "🙂", count: Violation.maxAddressLength)
        var state = InstanceState(
            service: String(repeating: "s", count: Violation.maxServiceNameLength), id: wide, address: wide,
            tags: (0..<Violation.maxTags).map { "\($0)" + String(repeating: "🙂", count: Violation.maxTagLength - 2) },
            metadata: (0..<Violation.maxMetadataEntries).map {
                MetadataEntry(String(format: "%03d", $0) + String(repeating: "k", count: Violation.maxMetadataKeyLength - 3),
                              String(repeating: "🙂", count: Violation.maxMetadataValueLength))
            },
            weight: 1000, zone: String(repeating: "z", count: Violation.maxZoneLength), status: .outOfService,
            ttl: .seconds(3600), registeredAt: now)
        let longID = String(repeating: "🙂", count: Violation.maxCheckIDLength - 1)
        let url = "http://x/" + String(repeating: "p", count: Violation.maxCheckURLLength - 9)
        let headers = (0..<Violation.maxCheckHeaders).map {
            MetadataEntry("\($0)" + String(repeating: "h", count: Violation.maxCheckHeaderNameLength - 1),
                          String(repeating: "🙂", count: Violation.maxCheckHeaderValueLength))
        }
        state.attributes.checks = (0..<Violation.maxChecks).map {
            HealthCheck(id: "\($0)" + longID, name: "\($0)" + longID,
                        probe: .http(.init(url: url, method: "OPTIONS", headers: headers)),
                        interval: .seconds(10), deregisterAfter: .seconds(60), status: .critical)
        }
        #expect(Violation.checkHealthChecks(state.attributes.checks) == nil)
        let payload = JournalCodec.encode(.upsert(state, changeIndex: .max), wallOffset: wallOffset)
        #expect(payload.count <= Frames.maxPayloadBytes)
        #expect(payload.count > Frames.maxPayloadBytes - 1024)
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
