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
        var output: [UInt8] = []
        for entry in entries { Frames.append(JournalCodec.encode(entry, wallOffset: wallOffset), to: &output) }
        return output
    }
}
