#if canImport(Glibc)
import Glibc
#endif

enum Environment {
    /// The process environment as a dictionary, read once at start-up.
    static var current: [String: String] {
        var result: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let pair = String(cString: pointer)
            if let equals = pair.firstIndex(of: "=") {
                result[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
            entry += 1
        }
        return result
    }
}

enum Limits {
    /// Raises the soft open-file limit to the hard one: each client connection is a file
    /// descriptor, and the usual soft default (1024) would cap a registry far below what
    /// one loop can serve.
    static func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// The open-file limit in force (after `raiseOpenFileLimit`).
    static var openFiles: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return Int(min(limit.rlim_cur, 1 << 30))
    }

    /// The default connection limit: the descriptor limit less 5 % (at least 64), which the
    /// log, the data directory, the listener, the helper threads' pipes and the descriptor a
    /// refused connection briefly takes need.
    static var defaultMaxConnections: Int {
        let descriptors = openFiles
        return max(1, descriptors - max(64, descriptors / 20))
    }
}

/// Writes one line to stderr, for failures before logging starts.
func printError(_ message: String) {
    let line = message + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}
