#if canImport(Glibc)
import Glibc
#endif
import Registry

/// Rebuilds a registry from journal bytes (a snapshot's records, then the log's).
public enum Recovery {
    /// A stretch of a file with no valid record in it, which `--repair` skipped.
    public struct SkippedRegion: Equatable, Sendable {
        public let offset: Int
        public let length: Int
        public let reason: String
    }

    public struct Report: Equatable {
        /// Records applied.
        public var applied = 0
        /// Records that decoded but break a rule of this server (for example a TTL above
        /// today's --max-ttl): skipped, with the reason, so that start-up can say so.
        public var skipped: [String] = []
        /// Bytes to cut off at the end: what a crash left of the last append.
        public var tornTailBytes = 0
        /// Stretches with no valid record that a repair skipped, in file order.
        public var skippedRegions: [SkippedRegion] = []
        /// The length of the valid prefix: where appending may continue (after a repair,
        /// where the last valid record ends).
        public var validLength = 0
        /// The highest change index seen.
        public var lastChangeIndex: UInt64 = 0
    }

    public struct Damage: Error, Equatable {
        public let offset: Int
        public let reason: String
        /// Where the next valid record starts, if one does.
        public let nextValid: Int?
        /// Not damage: a record of a newer format than this registry reads.
        public var isNewerFormat = false
    }

    /// Applies every valid record of `bytes` to `registry`.
    ///
    /// Without `repair`, records are applied from the start up to the first bad frame: a torn
    /// tail is reported for cutting off; damage throws, saying where the next valid record
    /// is. With `repair`, every valid record in the file is applied, wherever it is, and the
    /// stretches between them are reported as skipped.
    public static func replay(_ bytes: [UInt8], into registry: inout Registry, now: Instant, wallOffset: Int64,
                              repair: Bool) throws(Damage) -> Report {
        var report = Report()
        func apply(_ payload: ArraySlice<UInt8>) throws(Damage) {
            let entry: JournalEntry
            do {
                entry = try JournalCodec.decode(payload, wallOffset: wallOffset)
            } catch {
                let offset = payload.startIndex - Frames.headerBytes
                if error.isNewerFormat { throw Damage(offset: offset, reason: error.reason, nextValid: nil, isNewerFormat: true) }
                throw Damage(offset: offset, reason: "a record this server cannot read (\(error.reason))",
                             nextValid: FrameSearch.nextValidFrame(in: bytes, from: offset + 1, before: bytes.count,
                                                                   isRecord: JournalCodec.isRecord))
            }
            if let violation = registry.restore(entry, now: now) {
                report.skipped.append(violation.message)
            } else {
                report.applied += 1
            }
            report.lastChangeIndex = max(report.lastChangeIndex, entry.changeIndex)
        }
        if repair {
            let salvaged = Frames.salvage(bytes, isRecord: JournalCodec.isRecord)
            for payload in salvaged.payloads { try apply(payload) }
            report.skippedRegions = salvaged.damaged.map { SkippedRegion(offset: $0.offset, length: $0.length, reason: $0.reason) }
            report.tornTailBytes = salvaged.tornTail
            report.validLength = salvaged.payloads.last?.endIndex ?? 0
            return report
        }
        let scan = Frames.scan(bytes, isRecord: JournalCodec.isRecord)
        for payload in scan.payloads { try apply(payload) }
        report.validLength = scan.validLength
        switch scan.ending {
        case .clean:
            break
        case .tornTail(_, let dropped):
            report.tornTailBytes = dropped
        case .damaged(let offset, let reason, let next):
            throw Damage(offset: offset, reason: reason, nextValid: next)
        }
        return report
    }

    /// Frames journal entries for appending to a log or writing a snapshot.
    public static func frame(_ entries: [JournalEntry], wallOffset: Int64) -> [UInt8] {
        var writer = ByteWriter()
        writer.bytes.reserveCapacity(entries.count * 128)
        for entry in entries {
            Frames.appendFrame(to: &writer) { JournalCodec.encode(entry, wallOffset: wallOffset, into: &$0) }
        }
        return writer.bytes
    }
}

extension Recovery {
    /// A torn last append, to be cut off: where, how much, and the copy of what is cut.
    public struct TornTail {
        public let generation: UInt64
        public let file: String
        public let offset: Int
        public let bytes: Int
        /// The cut bytes, kept beside the log as `<log>.torn-<offset>.damaged`.
        public let keptAs: String
    }

    /// What `--repair` did to one damaged file.
    public struct FileRepair {
        public let file: String
        /// Valid records kept from the file.
        public let keptRecords: Int
        public let skippedRegions: [SkippedRegion]
        /// Where the damaged file's copy was written.
        public let keptAs: String

        public var skippedBytes: Int { skippedRegions.reduce(0) { $0 + $1.length } }
    }

    /// What start-up found in the data directory and did about it.
    public struct Loaded {
        /// The snapshot the state started from, if any.
        public var snapshot: (generation: UInt64, instances: Int)?
        /// The logs replayed after it, in order, with their record counts.
        public var logs: [(generation: UInt64, records: Int)] = []
        /// Records that broke a rule of this server's configuration and were left out.
        public var skipped: [String] = []
        /// What crashes left half written at the end of a log, to be cut off: normally the
        /// last log's; an older log's too when the machine went down while the logs were
        /// rotating.
        public var tornTails: [TornTail] = []
        /// The damaged files a repair salvaged, in the order they were read. When this is not
        /// empty, the caller must write a fresh snapshot: the damaged generations must not be
        /// read again.
        public var repairs: [FileRepair] = []
        /// The highest change index on disk.
        public var lastChangeIndex: UInt64 = 0
        /// The newest generation found (0 when the directory was empty).
        public var lastGeneration: UInt64 = 0
    }

    /// Rebuilds `registry` from the newest snapshot and the logs after it.
    ///
    /// A torn last append is tolerated and reported (a copy of its bytes is kept); the caller
    /// cuts it off with `DataDirectory.openLog(generation:truncatingTo:)`. Any other damage
    /// is an error that names the file, the offset and where the next valid record is,
    /// unless `repair` is set: then every valid record of every file is kept, the damaged
    /// files are copied aside as `*.damaged`, and the caller must write a fresh snapshot.
    /// Returns, besides the report, where appending continues: the last log's generation and
    /// valid length.
    public static func load(_ directory: DataDirectory, into registry: inout Registry, now: Instant, wallOffset: Int64,
                            repair: Bool) throws(StorageError) -> (loaded: Loaded, appendAt: (generation: UInt64, length: Int)) {
        var loaded = Loaded()
        var snapshots: [UInt64] = []
        var logs: [UInt64] = []
        for name in try directory.fileNames() {
            switch DataDirectory.kind(of: name) {
            case .snapshot(let generation): snapshots.append(generation)
            case .log(let generation): logs.append(generation)
            case .temporary, nil: break
            }
        }
        let base = snapshots.max()
        // About 100 bytes per record: room for that many instances saves rehashing.
        let estimate = (base.map { directory.size(of: DataDirectory.snapshotName($0)) } ?? 0)
            + logs.reduce(0) { $0 + directory.size(of: DataDirectory.logName($1)) }
        registry.reserveCapacity(instances: min(estimate / 100, 50_000_000))
        loaded.lastGeneration = max(base ?? 0, logs.max() ?? 0)
        let replayed = logs.filter { $0 >= (base ?? 0) }.sorted()

        func refuse(_ name: String, _ damage: Damage, size: Int) -> StorageError {
            if damage.isNewerFormat {
                return StorageError("\(directory.path)/\(name) holds \(damage.reason) at byte \(damage.offset): run that registry "
                    + "version (or a later one) on this data directory; this one cannot read it, and --repair would drop those records")
            }
            let next = damage.nextValid.map { "the next valid record starts at byte \($0), \($0 - damage.offset) bytes later" }
                ?? "no valid record follows it"
            return StorageError("\(directory.path)/\(name) is damaged at byte \(damage.offset) of \(size) (\(damage.reason)); \(next). "
                + "Everything before byte \(damage.offset) is intact. Start once with --repair to keep every valid record of "
                + "every file and skip only the damaged bytes (a copy of each damaged file is kept as *.damaged), "
                + "or restore the directory from a backup")
        }

        if let generation = base {
            let name = DataDirectory.snapshotName(generation)
            let bytes = try directory.read(name)
            switch replaySnapshot(bytes, into: &registry, now: now, wallOffset: wallOffset) {
            case .success(let result):
                loaded.snapshot = (generation, result.instances)
                loaded.skipped += result.skipped
                loaded.lastChangeIndex = result.changeIndex
            case .failure(let damage):
                // A snapshot is renamed into place only once whole and fsynced: any flaw is
                // damage, torn or not.
                guard repair, !damage.isNewerFormat else { throw refuse(name, damage, size: bytes.count) }
                var salvaged = Registry(policy: registry.policy)
                let report = salvageSnapshot(bytes, into: &salvaged, now: now, wallOffset: wallOffset)
                registry = salvaged
                loaded.snapshot = (generation, registry.instanceCount)
                loaded.skipped += report.skipped
                loaded.lastChangeIndex = report.lastChangeIndex
                loaded.repairs.append(FileRepair(file: "\(directory.path)/\(name)", keptRecords: report.applied,
                                                 skippedRegions: report.skippedRegions, keptAs: "\(directory.path)/\(name).damaged"))
                try preserve(bytes[...], as: name + ".damaged", in: directory)
            }
        }
        var appendAt = (generation: replayed.last ?? max(base ?? 1, 1), length: 0)
        for generation in replayed {
            let name = DataDirectory.logName(generation)
            let bytes = try directory.read(name)
            var report: Report
            do {
                report = try replay(bytes, into: &registry, now: now, wallOffset: wallOffset, repair: false)
            } catch {
                guard repair, !error.isNewerFormat else { throw refuse(name, error, size: bytes.count) }
                // Start the file over, keeping every valid record wherever it is. Replaying
                // the records before the damage again is harmless: each is a whole state or
                // a removal, applied in order.
                do {
                    report = try replay(bytes, into: &registry, now: now, wallOffset: wallOffset, repair: true)
                } catch {
                    // Unreachable: a salvage applies only records that decode.
                    throw StorageError("\(directory.path)/\(name): \(error.reason)")
                }
                loaded.repairs.append(FileRepair(file: "\(directory.path)/\(name)", keptRecords: report.applied,
                                                 skippedRegions: report.skippedRegions, keptAs: "\(directory.path)/\(name).damaged"))
                try preserve(bytes[...], as: name + ".damaged", in: directory)
            }
            loaded.logs.append((generation, report.applied))
            loaded.skipped += report.skipped
            loaded.lastChangeIndex = max(loaded.lastChangeIndex, report.lastChangeIndex)
            if report.tornTailBytes > 0 {
                let keptAs = "\(name).torn-\(report.validLength).damaged"
                try preserve(bytes[report.validLength...], as: keptAs, in: directory)
                loaded.tornTails.append(TornTail(generation: generation, file: "\(directory.path)/\(name)", offset: report.validLength,
                                                 bytes: report.tornTailBytes, keptAs: "\(directory.path)/\(keptAs)"))
            }
            appendAt = (generation, report.validLength)
        }
        return (loaded, appendAt)
    }

    private static func replaySnapshot(_ bytes: [UInt8], into registry: inout Registry, now: Instant,
                                       wallOffset: Int64) -> Result<(instances: Int, changeIndex: UInt64, skipped: [String]), Damage> {
        let scan = Frames.scan(bytes, isRecord: JournalCodec.isRecord)
        func damage(_ offset: Int, _ reason: String) -> Damage {
            Damage(offset: offset, reason: reason,
                   nextValid: FrameSearch.nextValidFrame(in: bytes, from: offset + 1, before: bytes.count, isRecord: JournalCodec.isRecord))
        }
        guard let first = scan.payloads.first, let changeIndex = JournalCodec.decodeSnapshotHeader(first) else {
            return .failure(damage(0, "no snapshot header"))
        }
        var skipped: [String] = []
        var instances = 0
        var records = 0
        var trailerCount: UInt64?
        for payload in scan.payloads.dropFirst() {
            if let count = JournalCodec.decodeSnapshotTrailer(payload) {
                trailerCount = count
                break
            }
            let entry: JournalEntry
            do {
                entry = try JournalCodec.decode(payload, wallOffset: wallOffset)
            } catch {
                if error.isNewerFormat {
                    return .failure(Damage(offset: payload.startIndex - Frames.headerBytes, reason: error.reason, nextValid: nil,
                                           isNewerFormat: true))
                }
                return .failure(damage(payload.startIndex - Frames.headerBytes, "a record this server cannot read (\(error.reason))"))
            }
            records += 1
            if let violation = registry.restore(entry, now: now) { skipped.append(violation.message) } else { instances += 1 }
        }
        registry.restore(.indexAdvanced(to: changeIndex), now: now)
        switch scan.ending {
        case .clean:
            break
        case .tornTail(let offset, _):
            return .failure(damage(offset, "the snapshot ends in an incomplete record"))
        case .damaged(let offset, let reason, let next):
            return .failure(Damage(offset: offset, reason: reason, nextValid: next))
        }
        guard let count = trailerCount, count == records, records + 2 == scan.payloads.count else {
            return .failure(damage(scan.validLength, trailerCount == nil
                ? "the snapshot ends without its trailer" : "the trailer counts \(trailerCount!) records, the file holds \(records)"))
        }
        return .success((instances, changeIndex, skipped))
    }

    /// Every valid instance record of a damaged snapshot: header and trailer are used when
    /// found and not required. Its records are whole states, so any subset is a consistent
    /// (if incomplete) registry, which the logs after it then bring forward.
    private static func salvageSnapshot(_ bytes: [UInt8], into registry: inout Registry, now: Instant,
                                        wallOffset: Int64) -> Report {
        var report = Report()
        let salvaged = Frames.salvage(bytes, isRecord: JournalCodec.isRecord)
        for payload in salvaged.payloads {
            if let index = JournalCodec.decodeSnapshotHeader(payload) {
                report.lastChangeIndex = max(report.lastChangeIndex, index)
                continue
            }
            if JournalCodec.decodeSnapshotTrailer(payload) != nil { continue }
            guard let entry = try? JournalCodec.decode(payload, wallOffset: wallOffset) else { continue }
            if let violation = registry.restore(entry, now: now) { report.skipped.append(violation.message) } else { report.applied += 1 }
            report.lastChangeIndex = max(report.lastChangeIndex, entry.changeIndex)
        }
        registry.restore(.indexAdvanced(to: report.lastChangeIndex), now: now)
        report.skippedRegions = salvaged.damaged.map { SkippedRegion(offset: $0.offset, length: $0.length, reason: $0.reason) }
        if salvaged.tornTail > 0 {
            report.skippedRegions.append(SkippedRegion(offset: bytes.count - salvaged.tornTail, length: salvaged.tornTail,
                                                       reason: "an incomplete record at the end"))
        }
        return report
    }

    /// Writes `bytes` to a new file `name` in the directory, durably.
    private static func preserve(_ bytes: ArraySlice<UInt8>, as name: String, in directory: DataDirectory) throws(StorageError) {
        let path = directory.path + "/" + name
        let file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard file >= 0 else { throw .system("cannot create \(path)") }
        defer { close(file) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { write(file, $0.baseAddress! + written, bytes.count - written) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw .system("cannot write \(path)") }
            written += count
        }
        guard fsync(file) == 0 else { throw .system("cannot fsync \(path)") }
    }
}
