#if canImport(Glibc)
import Glibc
#endif

/// One log file, open for appending. Used from the event loop only; the descriptor may be
/// handed to the sync worker, which only fsyncs (and, once retired, closes) it.
public final class LogFile {
    public let descriptor: Int32
    public let generation: UInt64
    /// The file's path, for messages.
    public let name: String
    /// Bytes in the file: everything appended so far that a failed append did not take back.
    public private(set) var length: Int
    /// Set when a failed append could not be cut back off: the file's end is not `length`
    /// until a later attempt manages the cut.
    private var pendingCut = false

    init(descriptor: Int32, generation: UInt64, name: String, length: Int) {
        self.descriptor = descriptor
        self.generation = generation
        self.name = name
        self.length = length
    }

    /// Appends `bytes` whole, or not at all: after a failed or short write the file is cut
    /// back to where it was, so that a half-written batch never precedes later records.
    /// (Writes go to the page cache; durability is the sync worker's fsync.)
    public func append(_ bytes: [UInt8]) throws(StorageError) {
        if pendingCut {
            guard ftruncate(descriptor, off_t(length)) == 0 else {
                throw .system("cannot cut \(name) back to \(length) bytes after an earlier failed write")
            }
            pendingCut = false
        }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + written, bytes.count - written) }
            if count > 0 {
                written += count
                continue
            }
            let code = count < 0 ? errno : ENOSPC
            if code == EINTR { continue }
            if written > 0 && ftruncate(descriptor, off_t(length)) != 0 { pendingCut = true }
            throw .system("cannot append to \(name)", code: code)
        }
        length += bytes.count
    }

    /// Closes the file; only when no sync worker holds its descriptor.
    public func close() {
        _ = Glibc.close(descriptor)
    }
}
