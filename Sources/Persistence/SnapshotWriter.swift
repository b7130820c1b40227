#if canImport(Glibc)
import Glibc
#endif
import Registry

/// Writes and reads snapshot files: a header record (change index, instance count), then
/// one upsert record per instance, all framed like the log.
public enum SnapshotWriter {
    public struct Written: Sendable, Equatable {
        public let generation: UInt64
        public let bytes: Int
        public let instances: Int
        public let nanoseconds: Int64
    }

    public struct Job: Sendable {
        public let registry: Registry
        public let generation: UInt64
        public let directory: DataDirectory
        public let wallOffset: Int64

        public init(registry: Registry, generation: UInt64, directory: DataDirectory, wallOffset: Int64) {
            self.registry = registry
            self.generation = generation
            self.directory = directory
            self.wallOffset = wallOffset
        }
    }

    /// Writes `job.registry`'s durable state as snapshot `job.generation`: to a temporary
    /// file, fsynced, renamed into place, the directory fsynced. Then removes the older
    /// generations, which the snapshot replaces. Runs on a worker thread: `job.registry` is
    /// the loop's copy-on-write copy, frozen at the moment the log was rotated.
    public static func write(_ job: Job) throws(StorageError) -> Written {
        let started = monotonicNanoseconds()
        let directory = job.directory
        let name = DataDirectory.snapshotName(job.generation)
        let temporary = name + ".tmp"
        let path = directory.path + "/" + temporary
        let file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard file >= 0 else { throw .system("cannot create \(path)") }
        var total = 0
        do throws(StorageError) {
            let states = job.registry.durableState()
            var chunk = ByteWriter()
            chunk.bytes.reserveCapacity(1 << 20)
            Frames.append(JournalCodec.encode(JournalCodec.SnapshotHeader(changeIndex: job.registry.changeIndex,
                                                                            instanceCount: UInt64(states.count))), to: &chunk.bytes)
            for state in states {
                Frames.appendFrame(to: &chunk) { JournalCodec.encode(.upsert(state, changeIndex: 0), wallOffset: job.wallOffset, into: &$0) }
                if chunk.bytes.count >= 1 << 20 {
                    try writeAll(chunk.bytes, to: file, path: path)
                    total += chunk.bytes.count
                    chunk.bytes.removeAll(keepingCapacity: true)
                }
            }
            try writeAll(chunk.bytes, to: file, path: path)
            total += chunk.bytes.count
            guard fsync(file) == 0 else { throw .system("cannot fsync \(path)") }
            close(file)
            try directory.rename(temporary, to: name)
            try directory.sync()
            try directory.removeGenerations(below: job.generation)
            return Written(generation: job.generation, bytes: total, instances: states.count,
                           nanoseconds: monotonicNanoseconds() - started)
        } catch {
            close(file)
            _ = try? directory.remove(temporary)
            throw error
        }
    }

    private static func writeAll(_ bytes: [UInt8], to file: Int32, path: String) throws(StorageError) {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(file, $0.baseAddress! + written, bytes.count - written) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw .system("cannot write \(path)", code: count < 0 ? errno : ENOSPC) }
            written += count
        }
    }

    static func monotonicNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}
