#if canImport(Glibc)
import Glibc
#endif

/// Writes log events to stdout, one line each: `<time> <LEVEL> <event> key=value …`.
///
/// Lines are collected during a callback and written with one `write(2)` by `flush()`, which
/// the server calls at the end of every callback that logged, so a mass expiry of thousands
/// of instances costs a few system calls instead of thousands.
final class Logger {
    let level: Config.LogLevel
    private var pending: [UInt8] = []

    init(level: Config.LogLevel) {
        self.level = level
    }

    func enabled(_ level: Config.LogLevel) -> Bool {
        level >= self.level
    }

    func debug(_ event: @autoclosure () -> String) { log(.debug, event()) }
    func info(_ event: @autoclosure () -> String) { log(.info, event()) }
    func warn(_ event: @autoclosure () -> String) { log(.warn, event()) }
    func error(_ event: @autoclosure () -> String) { log(.error, event()) }

    func log(_ level: Config.LogLevel, _ event: @autoclosure () -> String) {
        guard enabled(level) else { return }
        let line = "\(Clock.iso8601(unixNanoseconds: Clock.wallNow())) \(level.name.uppercased()) \(event())\n"
        pending.append(contentsOf: line.utf8)
    }

    /// A line printed as it is, without time or level (the start-up banner).
    func plain(_ line: String) {
        pending.append(contentsOf: (line + "\n").utf8)
    }

    var hasPending: Bool { !pending.isEmpty }

    func flush() {
        guard !pending.isEmpty else { return }
        var offset = 0
        pending.withUnsafeBytes { buffer in
            while offset < buffer.count {
                let written = write(1, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    // stdout is gone or full (EAGAIN on a non-blocking pipe): drop the
                    // rest rather than stall the loop that serves every client.
                    break
                }
            }
        }
        pending.removeAll(keepingCapacity: pending.count <= 64 * 1024)
    }
}

/// Formats a value for a `key=value` log field: quoted when it has spaces, quotes or
/// control characters, so that one event is always one line.
func logValue(_ value: String) -> String {
    let needsQuotes = value.isEmpty || value.unicodeScalars.contains { $0.value <= 0x20 || $0 == "\"" || $0.value == 0x7F }
    guard needsQuotes else { return value }
    var quoted = "\""
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\"": quoted += "\\\""
        case "\\": quoted += "\\\\"
        case "\n": quoted += "\\n"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                quoted += "\\x" + String(scalar.value, radix: 16)
            } else {
                quoted.unicodeScalars.append(scalar)
            }
        }
    }
    return quoted + "\""
}
