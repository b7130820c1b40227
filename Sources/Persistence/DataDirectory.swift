#if canImport(Glibc)
import Glibc
#endif

/// A file operation that failed: what was being done, to which file, and the system's reason.
public struct StorageError: Error, Equatable, Sendable {
    public let message: String
    /// The `errno` behind it; 0 when the problem is the content, not the system.
    public let code: Int32

    public init(_ message: String, code: Int32 = 0) {
        self.message = message
        self.code = code
    }

    static func system(_ what: String, code: Int32 = errno) -> StorageError {
        StorageError("\(what): \(String(cString: strerror(code)))", code: code)
    }
}

/// The registry's data directory, locked for the life of the process.
///
/// Its files:
///
/// - `LOCK`: held with `flock` while a registry uses the directory; holds that registry's pid.
/// - `snapshot-G.snap`: the whole durable state at the moment log `G` was started.
/// - `log-G.log`: every durable change after that, appended in order.
///
/// The state is the newest snapshot `S` (or the empty registry when there is none) followed
/// by logs `S`, `S+1`, … in order. A snapshot is written to a `.tmp` file, fsynced, renamed
/// into place and the directory fsynced; only then are older generations deleted. So a crash
/// at any moment leaves a set of files that reads back to every change that reached the disk.
public final class DataDirectory: Sendable {
    public let path: String
    /// The directory itself, open for `fsync` (which makes new and renamed names durable).
    public let descriptor: Int32
    private let lockDescriptor: Int32

    public enum FileKind: Equatable, Sendable {
        case snapshot(generation: UInt64)
        case log(generation: UInt64)
        /// A snapshot a crash interrupted before it was renamed into place.
        case temporary
    }

    /// Opens the directory at `path`, creating it (and its parents) when missing, and takes
    /// its lock. Fails when another process holds the lock.
    public static func open(_ path: String) throws(StorageError) -> DataDirectory {
        try makeDirectories(path)
        let directory = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw .system("cannot open data directory \(path)") }
        let lockPath = path + "/LOCK"
        let lock = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else {
            let code = errno
            var failure = StorageError.system("cannot create \(lockPath)", code: code)
            if code == EACCES || code == EROFS {
                failure = StorageError(failure.message + "; the registry writes its data there: make it writable for uid \(getuid()), "
                    + "or choose another --data-dir (or --in-memory)", code: code)
            }
            close(directory)
            throw failure
        }
        if flock(lock, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            var holder = [UInt8](repeating: 0, count: 32)
            let count = pread(lock, &holder, holder.count, 0)
            let pid = count > 0 ? String(decoding: holder[..<count], as: UTF8.self).filter(\.isNumber) : ""
            close(lock)
            close(directory)
            if code == EWOULDBLOCK {
                throw StorageError("data directory \(path) is in use by another registry\(pid.isEmpty ? "" : " (pid \(pid))"); "
                    + "stop that one first (one that was sent SIGTERM keeps it until it exits, after its --shutdown-grace), "
                    + "or give this one another --data-dir", code: code)
            }
            throw .system("cannot lock \(lockPath)", code: code)
        }
        let pid = Array("\(getpid())\n".utf8)
        if ftruncate(lock, 0) != 0 || pwrite(lock, pid, pid.count, 0) != pid.count {
            let failure = StorageError.system("cannot write \(lockPath)")
            close(lock)
            close(directory)
            throw failure
        }
        return DataDirectory(path: path, descriptor: directory, lockDescriptor: lock)
    }

    private init(path: String, descriptor: Int32, lockDescriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
        self.lockDescriptor = lockDescriptor
    }

    deinit {
        close(lockDescriptor)
        close(descriptor)
    }

    public static func snapshotName(_ generation: UInt64) -> String { "snapshot-\(padded(generation)).snap" }
    public static func logName(_ generation: UInt64) -> String { "log-\(padded(generation)).log" }

    /// Generations are zero-padded so that names sort in generation order.
    private static func padded(_ generation: UInt64) -> String {
        let digits = String(generation)
        return String(repeating: "0", count: max(0, 12 - digits.count)) + digits
    }

    public static func kind(of name: String) -> FileKind? {
        if name.hasSuffix(".tmp") { return .temporary }
        if name.hasPrefix("snapshot-"), name.hasSuffix(".snap"),
           let generation = UInt64(name.dropFirst("snapshot-".count).dropLast(".snap".count)) {
            return .snapshot(generation: generation)
        }
        if name.hasPrefix("log-"), name.hasSuffix(".log"), let generation = UInt64(name.dropFirst("log-".count).dropLast(".log".count)) {
            return .log(generation: generation)
        }
        return nil
    }

    /// The names of the registry's files in the directory (snapshots, logs, temporaries).
    public func fileNames() throws(StorageError) -> [String] {
        guard let stream = opendir(path) else { throw .system("cannot list data directory \(path)") }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if Self.kind(of: name) != nil { names.append(name) }
        }
        return names.sorted()
    }

    public func read(_ name: String) throws(StorageError) -> [UInt8] {
        let file = Glibc.open(path + "/" + name, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { throw .system("cannot open \(path)/\(name)") }
        defer { close(file) }
        var status = stat()
        guard fstat(file, &status) == 0 else { throw .system("cannot stat \(path)/\(name)") }
        let size = Int(status.st_size)
        var failure: Int32 = 0
        // Uninitialized: zero-filling a 100 MB log first would cost as much as reading it.
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var offset = 0
            while offset < size {
                let count = pread(file, buffer.baseAddress! + offset, size - offset, off_t(offset))
                if count < 0 && errno == EINTR { continue }
                if count < 0 { failure = errno }
                guard count > 0 else { break }
                offset += count
            }
            initialized = offset
        }
        guard failure == 0 else { throw .system("cannot read \(path)/\(name)", code: failure) }
        return bytes
    }

    /// The size of a file in bytes; 0 when it cannot be found.
    public func size(of name: String) -> Int {
        var status = stat()
        return stat(path + "/" + name, &status) == 0 ? Int(status.st_size) : 0
    }

    /// Makes every name created, renamed or removed in the directory so far durable.
    public func sync() throws(StorageError) {
        guard fsync(descriptor) == 0 else { throw .system("cannot fsync data directory \(path)") }
    }

    public func rename(_ name: String, to newName: String) throws(StorageError) {
        guard Glibc.rename(path + "/" + name, path + "/" + newName) == 0 else {
            throw .system("cannot rename \(path)/\(name) to \(newName)")
        }
    }

    public func remove(_ name: String) throws(StorageError) {
        guard unlink(path + "/" + name) == 0 || errno == ENOENT else { throw .system("cannot remove \(path)/\(name)") }
    }

    /// Removes the snapshots and logs older than `generation`, and leftover temporaries.
    public func removeGenerations(below generation: UInt64) throws(StorageError) {
        for name in try fileNames() {
            switch Self.kind(of: name) {
            case .snapshot(let other), .log(let other):
                if other < generation { try remove(name) }
            case .temporary:
                try remove(name)
            case nil:
                break
            }
        }
        try sync()
    }

    /// Opens log `generation` for appending, creating it when missing; with `length`, first
    /// cuts it to that many bytes (dropping a torn tail) and makes the cut durable.
    public func openLog(generation: UInt64, truncatingTo length: Int? = nil) throws(StorageError) -> LogFile {
        let name = Self.logName(generation)
        let file = Glibc.open(path + "/" + name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard file >= 0 else { throw .system("cannot open \(path)/\(name) for appending") }
        if let length {
            guard ftruncate(file, off_t(length)) == 0, fdatasync(file) == 0 else {
                let failure = StorageError.system("cannot cut the torn tail off \(path)/\(name)")
                close(file)
                throw failure
            }
        }
        var status = stat()
        guard fstat(file, &status) == 0 else {
            let failure = StorageError.system("cannot stat \(path)/\(name)")
            close(file)
            throw failure
        }
        return LogFile(descriptor: file, generation: generation, name: "\(path)/\(name)", length: Int(status.st_size))
    }

    private static func makeDirectories(_ path: String) throws(StorageError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw .system("cannot create data directory \(path) (at \(prefix))")
            }
            prefix += "/"
        }
    }
}
