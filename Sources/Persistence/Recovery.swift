#if canImport(Glibc)
import Glibc
#endif
import Registry

/// Rebuilds a registry from journal bytes (a snapshot's records, then the log's).
public enum Recovery {
    public struct Report: Equatable {
        /// Records applied.
        public var applied = 0
        /// Records that decoded but break a rule of this server (for example a TTL above
        /// today's --max-ttl): skipped, with the reason, so that start-up can say so.
        public var skipped: [String] = []
        /// Bytes cut off at the end: a record a crash left half written.
        public var tornTailBytes = 0
        /// Bytes dropped by `--repair` from the first damaged record on.
        public var repairedBytes = 0
        /// The length of the valid prefix: where appending may continue.
        public var validLength = 0
        /// The highest change index seen.
        public var lastChangeIndex: UInt64 = 0
    }

    public struct Damage: Error, Equatable {
        public let offset: Int
        public let reason: String
    }

    /// Applies every valid record of `bytes` to `registry`. A torn last record is cut off
    /// (and counted); damage before the end throws, unless `repair` is set, which keeps
    /// everything before the damage and counts what was dropped.
    public static func replay(_ bytes: [UInt8], into registry: inout Registry, now: Instant, wallOffset: Int64,
                              repair: Bool) throws(Damage) -> Report {
        var report = Report()
        let scan = Frames.scan(bytes)
        for payload in scan.payloads {
            let entry: JournalEntry
            do {
                entry = try JournalCodec.decode(payload, wallOffset: wallOffset)
            } catch {
                let offset = payload.startIndex - Frames.headerBytes
                guard repair else { throw Damage(offset: offset, reason: error.reason) }
                report.repairedBytes = bytes.count - offset
                report.validLength = offset
                return report
            }
            if let violation = registry.restore(entry, now: now) {
                report.skipped.append(violation.message)
            } else {
                report.applied += 1
            }
            report.lastChangeIndex = max(report.lastChangeIndex, entry.changeIndex)
        }
        report.validLength = scan.validLength
        switch scan.ending {
        case .clean:
            break
        case .tornTail(_, let dropped):
            report.tornTailBytes = dropped
        case .damaged(let offset, let reason):
            guard repair else { throw Damage(offset: offset, reason: reason) }
            report.repairedBytes = bytes.count - offset
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
    /// What start-up found in the data directory and did about it.
    public struct Loaded {
        /// The snapshot the state started from, if any.
        public var snapshot: (generation: UInt64, instances: Int)?
        /// The logs replayed after it, in order, with their record counts.
        public var logs: [(generation: UInt64, records: Int)] = []
        /// Records that broke a rule of this server's configuration and were left out.
        public var skipped: [String] = []
        /// Records a crash left half written at the end of a log, to be cut off: normally the
        /// last log's; an older log's too when the machine went down while the logs were
        /// rotating (the old log's last fsync had not finished, and the new log's first
        /// records were never acknowledged under `always`).
        public var tornTails: [(generation: UInt64, file: String, offset: Int, bytes: Int)] = []
        /// Damage that `repair` worked around: where it was, why, and how many bytes were
        /// dropped from there on (the rest of that file and every later log). The damaged
        /// files are kept beside the others with `.damaged` appended.
        public var repaired: (file: String, offset: Int, reason: String, droppedBytes: Int)?
        /// The highest change index on disk.
        public var lastChangeIndex: UInt64 = 0
        /// The newest generation found (0 when the directory was empty).
        public var lastGeneration: UInt64 = 0
    }

    /// Rebuilds `registry` from the newest snapshot and the logs after it.
    ///
    /// A torn last record is tolerated and reported; the caller cuts it off with
    /// `DataDirectory.openLog(generation:truncatingTo:)`. Damage anywhere else is an error that
    /// names the file and offset, unless `repair` is set: then everything before the damage is
    /// kept, the damaged files are copied aside, and the caller must write a fresh snapshot
    /// (the damaged generations must not be read again). Returns, besides the report, where
    /// appending continues: the last log's generation and valid length.
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
        var damagedFiles: [(name: String, bytes: [UInt8])] = []

        func damage(_ name: String, _ bytes: [UInt8], at offset: Int, _ reason: String, laterBytes: Int) throws(StorageError) {
            guard repair else {
                throw StorageError("\(directory.path)/\(name) is damaged at byte \(offset) (\(reason)); everything before it is "
                    + "intact. Start once with --repair to keep that and drop the \(bytes.count - offset + laterBytes) bytes from "
                    + "there on (the damaged files are kept as *.damaged), or restore the directory from a backup")
            }
            loaded.repaired = (file: "\(directory.path)/\(name)", offset: offset, reason: reason,
                               droppedBytes: bytes.count - offset + laterBytes)
            damagedFiles.append((name, bytes))
        }

        if let generation = base {
            let name = DataDirectory.snapshotName(generation)
            let bytes = try directory.read(name)
            let laterBytes = replayed.reduce(0) { $0 + directory.size(of: DataDirectory.logName($1)) }
            switch replaySnapshot(bytes, into: &registry, now: now, wallOffset: wallOffset) {
            case .success(let result):
                loaded.snapshot = (generation, result.instances)
                loaded.skipped += result.skipped
                loaded.lastChangeIndex = result.changeIndex
            case .failure(let problem):
                // A snapshot is renamed into place only once whole and fsynced: any flaw
                // is damage, and the logs after it describe changes to a state we lack.
                try damage(name, bytes, at: problem.offset, problem.reason, laterBytes: laterBytes)
                loaded.snapshot = (generation, registry.instanceCount)
            }
        }
        var appendAt = (generation: replayed.last ?? max(base ?? 1, 1), length: 0)
        if loaded.repaired == nil {
            for (position, generation) in replayed.enumerated() {
                let name = DataDirectory.logName(generation)
                let bytes = try directory.read(name)
                let later = replayed[(position + 1)...].reduce(0) { $0 + directory.size(of: DataDirectory.logName($1)) }
                let report: Report
                do {
                    report = try replay(bytes, into: &registry, now: now, wallOffset: wallOffset, repair: false)
                } catch {
                    try damage(name, bytes, at: error.offset, error.reason, laterBytes: later)
                    // Keep what precedes the damage.
                    _ = try? replay(Array(bytes[..<error.offset]), into: &registry, now: now, wallOffset: wallOffset, repair: false)
                    break
                }
                loaded.logs.append((generation, report.applied))
                loaded.skipped += report.skipped
                loaded.lastChangeIndex = max(loaded.lastChangeIndex, report.lastChangeIndex)
                if report.tornTailBytes > 0 {
                    loaded.tornTails.append((generation, "\(directory.path)/\(name)", report.validLength, report.tornTailBytes))
                }
                appendAt = (generation, report.validLength)
            }
        }
        for file in damagedFiles { try preserve(file.bytes, as: file.name + ".damaged", in: directory) }
        return (loaded, appendAt)
    }

    private struct SnapshotProblem: Error {
        let offset: Int
        let reason: String
    }

    private static func replaySnapshot(_ bytes: [UInt8], into registry: inout Registry, now: Instant,
                                       wallOffset: Int64) -> Result<(instances: Int, changeIndex: UInt64, skipped: [String]), SnapshotProblem> {
        let scan = Frames.scan(bytes)
        guard let first = scan.payloads.first, let changeIndex = JournalCodec.decodeSnapshotHeader(first) else {
            return .failure(SnapshotProblem(offset: 0, reason: "no snapshot header"))
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
                return .failure(SnapshotProblem(offset: payload.startIndex - Frames.headerBytes, reason: error.reason))
            }
            records += 1
            if let violation = registry.restore(entry, now: now) { skipped.append(violation.message) } else { instances += 1 }
        }
        registry.restore(.indexAdvanced(to: changeIndex), now: now)
        switch scan.ending {
        case .clean:
            break
        case .tornTail(let offset, _):
            return .failure(SnapshotProblem(offset: offset, reason: "the snapshot ends in an incomplete record"))
        case .damaged(let offset, let reason):
            return .failure(SnapshotProblem(offset: offset, reason: reason))
        }
        guard let count = trailerCount, count == records, records + 2 == scan.payloads.count else {
            return .failure(SnapshotProblem(offset: scan.validLength, reason: trailerCount == nil
                ? "the snapshot ends without its trailer" : "the trailer counts \(trailerCount!) records, the file holds \(records)"))
        }
        return .success((instances, changeIndex, skipped))
    }

    private static func preserve(_ bytes: [UInt8], as name: String, in directory: DataDirectory) throws(StorageError) {
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
