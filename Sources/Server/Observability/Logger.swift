#if canImport(Glibc)
import Glibc
#endif
import JSON
import Registry

/// Writes log events to stdout, one line each.
///
/// An event is a name and ordered fields. `--log-format text` (the default) writes
/// `<time> <LEVEL> <event> key=value …`; `--log-format json` writes one JSON object per line
/// (`{"time":…,"level":…,"event":…,"key":value…}`) for log collectors.
///
/// Lines are collected during a loop turn and written with one `write(2)` by `flush()`, the
/// last end-of-turn step (the first line of a turn asks for it through `onFirstLine`), so a
/// mass expiry of thousands of instances costs a few system calls instead of thousands.
final class Logger {
    enum Format: String, CaseIterable {
        case text, json
    }

    let level: Config.LogLevel
    let format: Format
    private var pending: [UInt8] = []
    /// Called when a line waits to be written and none did before.
    var onFirstLine: (() -> Void)?

    init(level: Config.LogLevel, format: Format = .text) {
        self.level = level
        self.format = format
    }

    func enabled(_ level: Config.LogLevel) -> Bool {
        level >= self.level
    }

    func debug(_ event: String, _ fields: KeyValuePairs<String, any LogValue> = [:]) { log(.debug, event, fields) }
    func info(_ event: String, _ fields: KeyValuePairs<String, any LogValue> = [:]) { log(.info, event, fields) }
    func warn(_ event: String, _ fields: KeyValuePairs<String, any LogValue> = [:]) { log(.warn, event, fields) }
    func error(_ event: String, _ fields: KeyValuePairs<String, any LogValue> = [:]) { log(.error, event, fields) }

    func log(_ level: Config.LogLevel, _ event: String, _ fields: KeyValuePairs<String, any LogValue>) {
        guard enabled(level) else { return }
        render(level, event, fields)
    }

    /// A line asked for by its own switch (the access log), written whatever the level; its
    /// fields are built at run time, some present only on some lines.
    func always(_ level: Config.LogLevel, _ event: String, _ fields: [(key: String, value: any LogValue)]) {
        render(level, event, fields)
    }

    /// For `KeyValuePairs` (the literal fields of most events) and arrays alike.
    private func render<Fields: Sequence>(_ level: Config.LogLevel, _ event: String, _ fields: Fields)
        where Fields.Element == (key: String, value: any LogValue) {
        let time = Clock.iso8601(unixNanoseconds: Clock.wallNow())
        switch format {
        case .text:
            var line = "\(time) \(level.name.uppercased()) \(event)"
            for (key, value) in fields {
                line += " \(key)="
                value.appendText(to: &line)
            }
            buffer((line + "\n").utf8)
        case .json:
            var writer = JSONWriter(capacity: 256)
            writer.raw("{\"time\":")
            writer.string(time)
            writer.raw(",\"level\":")
            writer.string(level.name)
            writer.raw(",\"event\":")
            writer.string(event)
            for (key, value) in fields {
                writer.raw(",")
                writer.string(key)
                writer.raw(":")
                value.appendJSON(to: &writer)
            }
            writer.raw("}\n")
            buffer(writer.bytes)
        }
    }

    /// A line for people (the start-up banner): as it is in text, an `info` event with the
    /// line as its message in JSON, so that every line of a JSON log parses.
    func plain(_ line: String) {
        switch format {
        case .text: buffer((line + "\n").utf8)
        case .json: render(.info, "banner", ["message": line])
        }
    }

    var hasPending: Bool { !pending.isEmpty }

    private func buffer<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let first = pending.isEmpty
        pending.append(contentsOf: bytes)
        if first { onFirstLine?() }
    }

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

/// A value a log field can hold, rendered for either format.
protocol LogValue {
    func appendText(to line: inout String)
    func appendJSON(to writer: inout JSONWriter)
}

extension String: LogValue {
    func appendText(to line: inout String) { line += logValue(self) }
    func appendJSON(to writer: inout JSONWriter) { writer.string(self) }
}

extension Int: LogValue {
    func appendText(to line: inout String) { line += String(self) }
    func appendJSON(to writer: inout JSONWriter) { writer.integer(self) }
}

extension Int64: LogValue {
    func appendText(to line: inout String) { line += String(self) }
    func appendJSON(to writer: inout JSONWriter) { writer.integer(self) }
}

extension UInt64: LogValue {
    func appendText(to line: inout String) { line += String(self) }
    func appendJSON(to writer: inout JSONWriter) { writer.integer(self) }
}

extension UInt16: LogValue {
    func appendText(to line: inout String) { line += String(self) }
    func appendJSON(to writer: inout JSONWriter) { writer.integer(self) }
}

extension Double: LogValue {
    func appendText(to line: inout String) { line += String(self) }
    func appendJSON(to writer: inout JSONWriter) { writer.raw(isFinite ? String(self) : "null") }
}

extension Bool: LogValue {
    func appendText(to line: inout String) { line += self ? "true" : "false" }
    func appendJSON(to writer: inout JSONWriter) { writer.raw(self ? "true" : "false") }
}

/// Formats a value for a `key=value` log field: quoted when it has spaces, quotes or
/// hidden characters, which are escaped (control and format characters, line and
/// paragraph separators), so that one event is always one line and reads as it is.
func logValue(_ value: String) -> String {
    let needsQuotes = value.isEmpty || value.unicodeScalars.contains {
        $0.value <= 0x20 || $0 == "\"" || ($0.value >= 0x7F && Violation.isHidden($0))
    }
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
            } else if scalar.value > 0x7F && Violation.isHidden(scalar) {
                quoted += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                quoted.unicodeScalars.append(scalar)
            }
        }
    }
    return quoted + "\""
}
