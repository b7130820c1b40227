#if canImport(Glibc)
import Glibc
#endif

/// What the loop asks of the sync worker. `through` counts every byte the loop has appended
/// to any log since start-up, so durability is one number however the logs rotate.
public enum SyncRequest: Sendable {
    /// Make the log behind `descriptor` durable up to byte `through`.
    case sync(descriptor: Int32, through: UInt64)
    /// The loop moved on to a new log: make the old one durable, close it, and make the new
    /// log's name durable (an fsync of the directory).
    case retire(descriptor: Int32, through: UInt64, directory: Int32)
}

public enum SyncOutcome: Sendable, Equatable {
    /// Everything appended up to byte `through` is on disk.
    case durable(through: UInt64)
    /// An fsync failed. After that the kernel may have dropped the pages it could not write,
    /// so no later fsync can vouch for them (PostgreSQL's lesson of 2018).
    case failed(String)
}

public enum SyncWork {
    /// Carries out a batch of requests in order, with one fsync per file however many
    /// requests name it: the group commit.
    public static func perform(_ requests: [SyncRequest]) -> [SyncOutcome] {
        var through: UInt64 = 0
        var pending: Int32?
        func flush() -> String? {
            guard let descriptor = pending else { return nil }
            pending = nil
            return fdatasync(descriptor) == 0 ? nil : "fdatasync of a log failed: \(String(cString: strerror(errno)))"
        }
        for request in requests {
            switch request {
            case .sync(let descriptor, let target):
                if let pending, pending != descriptor, let failure = flush() { return [.failed(failure)] }
                pending = descriptor
                through = max(through, target)
            case .retire(let descriptor, let target, let directory):
                if let failure = flush() { return [.failed(failure)] }
                if fdatasync(descriptor) != 0 {
                    return [.failed("fdatasync of a finished log failed: \(String(cString: strerror(errno)))")]
                }
                close(descriptor)
                if fsync(directory) != 0 {
                    return [.failed("fsync of the data directory failed: \(String(cString: strerror(errno)))")]
                }
                through = max(through, target)
            }
        }
        if let failure = flush() { return [.failed(failure)] }
        return [.durable(through: through)]
    }
}
