#if canImport(Glibc)
import Glibc
#endif
import Registry

/// Writes one snapshot file, in steps: a header record (the change index when the snapshot
/// began), one upsert record per instance, and a trailer record with the count, all framed
/// like the log. The file is written as `.tmp`, fsynced, renamed into place and the
/// directory fsynced; only then are the older generations removed.
///
/// The instances may be handed over while the registry keeps changing (see `Durability`):
/// the log started with this generation holds every change made since the header's
/// moment, and its records are whole states, so replaying it over the snapshot ends in the
/// right state whichever version of an instance the snapshot caught.
public final class SnapshotWriter {
    public struct Written: Sendable, Equatable {
        public let generation: UInt64
        public let bytes: Int
        public let instances: Int
        public let nanoseconds: Int64
    }

    public let generation: UInt64
    private let directory: DataDirectory
    private let wallOffset: Int64
    private let started: Int64
    private let name: String
    private let temporary: String
    /// -1 once closed: a descriptor number is reused at once, so it must never be closed twice.
    private var file: Int32
    private var buffer = ByteWriter()
    private var total = 0
    private var count = 0

    private static let flushBytes = 1 << 20

    public init(directory: DataDirectory, generation: UInt64, changeIndex: UInt64, wallOffset: Int64) throws(StorageError) {
        self.directory = directory
        self.generation = generation
        self.wallOffset = wallOffset
        started = Self.monotonicNanoseconds()
        name = DataDirectory.snapshotName(generation)
        temporary = name + ".tmp"
        let path = directory.path + "/" + temporary
        file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard file >= 0 else { throw .system("cannot create \(path)") }
        buffer.bytes.reserveCapacity(Self.flushBytes + 4096)
        Frames.appendFrame(to: &buffer) { JournalCodec.encodeSnapshotHeader(changeIndex: changeIndex, into: &$0) }
    }

    public func append(_ states: [InstanceState]) throws(StorageError) {
        for state in states {
            Frames.appendFrame(to: &buffer) { JournalCodec.encode(.upsert(state, changeIndex: 0), wallOffset: wallOffset, into: &$0) }
        }
        count += states.count
        if buffer.bytes.count >= Self.flushBytes { try flush() }
    }

    /// Completes the file and puts it in place; then the older generations go.
    public func finish() throws(StorageError) -> Written {
        Frames.appendFrame(to: &buffer) { JournalCodec.encodeSnapshotTrailer(instanceCount: UInt64(count), into: &$0) }
        try flush()
        guard fsync(file) == 0 else { throw .system("cannot fsync \(directory.path)/\(temporary)") }
        close(file)
        file = -1
        try directory.rename(temporary, to: name)
        try directory.sync()
        try directory.removeGenerations(below: generation)
        return Written(generation: generation, bytes: total, instances: count, nanoseconds: Self.monotonicNanoseconds() - started)
    }

    /// Gives up: the temporary file goes (start-up would remove it anyway).
    public func abandon() {
        if file >= 0 { close(file) }
        file = -1
        _ = try? directory.remove(temporary)
    }

    /// Writes the whole of `registry` at once (start-up after a repair).
    public static func write(_ registry: Registry, generation: UInt64, to directory: DataDirectory,
                             wallOffset: Int64) throws(StorageError) -> Written {
        let writer = try SnapshotWriter(directory: directory, generation: generation, changeIndex: registry.changeIndex,
                                        wallOffset: wallOffset)
        do {
            var start = 0
            while start < registry.slotCount {
                try writer.append(registry.durableStates(inSlots: start..<min(start + 10_000, registry.slotCount)))
                start += 10_000
            }
            return try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
    }

    private func flush() throws(StorageError) {
        var written = 0
        let bytes = buffer.bytes
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { Glibc.write(file, $0.baseAddress! + written, bytes.count - written) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                throw .system("cannot write \(directory.path)/\(temporary)", code: result < 0 ? errno : ENOSPC)
            }
            written += result
        }
        total += bytes.count
        buffer.bytes.removeAll(keepingCapacity: true)
    }

    static func monotonicNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}

/// What the loop sends the snapshot worker, in order: `begin`, any number of `states`,
/// then `finish` (or `abandon`).
public enum SnapshotStep: Sendable {
    case begin(directory: DataDirectory, generation: UInt64, changeIndex: UInt64, wallOffset: Int64)
    case states([InstanceState])
    case finish
    case abandon
}

public enum SnapshotProgress: Sendable {
    /// This many `states` steps were taken off the queue (written or, after a failure, dropped).
    case consumed(steps: Int)
    case written(SnapshotWriter.Written)
    case failed(generation: UInt64, StorageError)
}

/// The snapshot worker's side: carries out steps with one `SnapshotWriter` at a time.
/// Confined to the worker's thread (the `Worker` handler is its only caller), hence the
/// unchecked `Sendable`.
public final class SnapshotSession: @unchecked Sendable {
    private var writer: SnapshotWriter?
    private var failure: StorageError?
    private var generation: UInt64 = 0

    public init() {}

    public func handle(_ steps: [SnapshotStep]) -> [SnapshotProgress] {
        var consumed = 0
        var outcomes: [SnapshotProgress] = []
        for step in steps {
            switch step {
            case .begin(let directory, let generation, let changeIndex, let wallOffset):
                writer?.abandon()
                self.generation = generation
                failure = nil
                do {
                    writer = try SnapshotWriter(directory: directory, generation: generation, changeIndex: changeIndex,
                                                wallOffset: wallOffset)
                } catch {
                    writer = nil
                    failure = error
                }
            case .states(let states):
                consumed += 1
                guard let writer, failure == nil else { continue }
                do {
                    try writer.append(states)
                } catch {
                    failure = error
                    writer.abandon()
                    self.writer = nil
                }
            case .finish:
                if let writer {
                    do {
                        outcomes.append(.written(try writer.finish()))
                    } catch {
                        writer.abandon()
                        outcomes.append(.failed(generation: generation, error))
                    }
                } else {
                    outcomes.append(.failed(generation: generation, failure ?? StorageError("the snapshot was never begun")))
                }
                writer = nil
                failure = nil
            case .abandon:
                writer?.abandon()
                writer = nil
                failure = nil
            }
        }
        if consumed > 0 { outcomes.insert(.consumed(steps: consumed), at: 0) }
        return outcomes
    }
}
