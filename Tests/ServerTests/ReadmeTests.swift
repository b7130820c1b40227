import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The README's examples, run in order against one fresh registry, as a reader pasting them
/// would: every `$ ` line of a ```sh block is a command (with its continuation lines), and
/// the lines after it, up to the next command, are its answer. Each answer must match what
/// the README shows, ignoring only what changes from run to run (see `Example.normalized`).
///
/// Conventions the README follows, and this test reads:
/// - `  # 404` after an answer line is its HTTP status; a curl answer without one must be 2xx.
/// - `  # exit 4` after an answer line is the command's exit status; otherwise it must be 0.
/// - A line `…` stands for any number of lines; `…` inside a line for any text.
/// - A command whose comment says `Ctrl-C` runs until its answer is shown, then gets SIGINT;
///   one that ends in `&` runs in the background until the test ends.
/// - `localhost:5001` is the test's registry, `8600` its DNS port and `8001` a free port, all
///   mapped back in the answers.
@Suite(.serialized) struct ReadmeTests {
    struct Example {
        let line: Int
        var command: String
        var expected: [String] = []
        var statuses: [Int] = []
        var exitStatus: Int32 = 0

        var runsUntilInterrupted: Bool { command.contains("Ctrl-C") }
        var runsInBackground: Bool {
            let code = command.split(separator: "#", maxSplits: 1).first.map(String.init) ?? command
            return code.trimmingCharacters(in: .whitespaces).hasSuffix("&")
        }

        /// Times, uptimes and durations change from run to run; nothing else may.
        static func normalized(_ line: String) -> String {
            var text = line
            let rules: [(String, String)] = [
                (#"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z"#, "<time>"),
                (#""uptime_seconds":\d+(\.\d+)?"#, "\"uptime_seconds\":<n>"),
                // registryctl's UPTIME column, the last of its table.
                (#"\b(\d+(\.\d+)?[hms])+$"#, "<uptime>"),
            ]
            for (pattern, replacement) in rules {
                text = text.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
            }
            while text.hasSuffix(" ") || text.hasSuffix("\r") { text.removeLast() }
            return text
        }

        /// Whether `actual` (normalized) is what the README shows (normalized, with `…`).
        static func matches(expected: [String], actual: [String]) -> Bool {
            func lineMatches(_ pattern: String, _ line: String) -> Bool {
                guard pattern.contains("…") else { return pattern == line }
                let parts = pattern.components(separatedBy: "…").map { NSRegularExpression.escapedPattern(for: $0) }
                return line.range(of: "^" + parts.joined(separator: ".*") + "$", options: .regularExpression) != nil
            }
            func match(_ e: ArraySlice<String>, _ a: ArraySlice<String>) -> Bool {
                guard let first = e.first else { return a.isEmpty }
                if first == "…" {
                    for skip in 0...a.count where match(e.dropFirst(), a.dropFirst(skip)) { return true }
                    return false
                }
                guard let line = a.first, lineMatches(first, line) else { return false }
                return match(e.dropFirst(), a.dropFirst())
            }
            return match(expected[...], actual[...])
        }
    }

    static var readmeURL: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("README.md")
    }

    /// Every example of the README, in order.
    static func examples(in text: String) -> [Example] {
        var examples: [Example] = []
        var fence: String?
        var pending: Example?
        var commandIsOpen = false
        for (number, line) in text.components(separatedBy: "\n").enumerated() {
            if line.hasPrefix("```") {
                if fence == nil {
                    fence = String(line.dropFirst(3))
                } else {
                    fence = nil
                    if let example = pending { examples.append(example) }
                    pending = nil
                }
                continue
            }
            guard fence == "sh" else { continue }
            if commandIsOpen, pending != nil {
                pending!.command += "\n" + line
                commandIsOpen = !Self.isComplete(pending!.command)
                continue
            }
            if line.hasPrefix("$ ") {
                if let example = pending { examples.append(example) }
                pending = Example(line: number + 1, command: String(line.dropFirst(2)))
                commandIsOpen = !Self.isComplete(pending!.command)
                continue
            }
            guard pending != nil else { continue }
            var answer = line
            if let range = answer.range(of: #"\s{2,}#\s*(exit\s+)?\d{1,3}\s*$"#, options: .regularExpression) {
                let note = answer[range]
                let digits = Int(note.filter(\.isNumber)) ?? 0
                if note.contains("exit") { pending?.exitStatus = Int32(digits) } else { pending?.statuses.append(digits) }
                answer = String(answer[..<range.lowerBound])
            }
            pending?.expected.append(answer)
        }
        return examples
    }

    /// Without the blank lines at the end (a stream's event ends with one).
    static func trimmed(_ lines: [String]) -> [String] {
        var lines = lines
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    /// A command is whole when its quotes are closed and it does not end in a backslash.
    static func isComplete(_ command: String) -> Bool {
        var single = false
        var double = false
        var escaped = false
        for character in command {
            if escaped { escaped = false; continue }
            switch character {
            case "\\" where !single: escaped = true
            case "'" where !double: single.toggle()
            case "\"" where !single: double.toggle()
            default: break
            }
        }
        return !single && !double && !command.hasSuffix("\\")
    }

    @Test func theReadmeParsesIntoExamples() throws {
        let examples = Self.examples(in: try String(contentsOf: Self.readmeURL, encoding: .utf8))
        #expect(examples.count >= 30)
        #expect(!examples.contains { $0.expected.contains("TBD") })
        let multiLine = try #require(examples.first { $0.command.contains("\"tags\":[\"v2\",\"canary\"]") })
        #expect(multiLine.command.contains("\n") && multiLine.expected.count == 1)
        #expect(Example.matches(expected: ["a", "…", "d"], actual: ["a", "b", "c", "d"]))
        #expect(Example.matches(expected: ["x…z"], actual: ["xyz"]))
        #expect(!Example.matches(expected: ["a", "d"], actual: ["a", "b", "d"]))
        #expect(!Example.matches(expected: ["x…z"], actual: ["xyq"]))
    }

    @Test func theReadmeRunsAsWritten() throws {
        let registry = try RegistryProcess(["--dns-port", "0"])
        let otherPort = try ExampleServiceTests.freePort()
        let dnsPort = try #require(registry.log.range(of: "DNS on port ").flatMap { UInt16(registry.log[$0.upperBound...].prefix { $0.isNumber }) })
        let binaries = RegistryProcess.binaryURL.deletingLastPathComponent().path
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("readme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var background: [pid_t] = []
        defer {
            for group in background { kill(-group, SIGTERM) }
            usleep(200_000)
            for group in background { kill(-group, SIGKILL) }
        }

        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("REGISTRY_") && $0.key != "SERVICE_HOST" }
        environment["PATH"] = binaries + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["REGISTRY_URL"] = "http://localhost:\(registry.port)"
        var failures: [String] = []
        let examples = Self.examples(in: try String(contentsOf: Self.readmeURL, encoding: .utf8))
        for (number, example) in examples.enumerated() {
            let output = work.appendingPathComponent("\(number).out")
            let statusFile = work.appendingPathComponent("\(number).status")
            let groupFile = work.appendingPathComponent("\(number).group")
            let command = example.command
                .replacingOccurrences(of: ":5001", with: ":\(registry.port)")
                .replacingOccurrences(of: #"\b8001\b"#, with: String(otherPort), options: .regularExpression)
                .replacingOccurrences(of: #"\b8600\b"#, with: String(dnsPort), options: .regularExpression)
            // curl's status codes go to descriptor 3, out of the answer's way.
            let script = """
                exec 3>>'\(statusFile.path)'
                curl() { command curl -s -w '%{stderr}%{http_code}\\n' "$@" 2>&3; }
                \(command)
                """
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            let process = Process()
            // In a session of its own, so that bash and what it starts are signalled as one
            // group; bash writes down its pid, which is the group's.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
            process.arguments = ["--wait", "bash", "-c", "echo $$ > '\(groupFile.path)'\n" + script]
            process.environment = environment
            process.currentDirectoryURL = work
            let handle = try FileHandle(forWritingTo: output)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            try handle.close()

            func shown() -> [String] {
                let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
                // Split at every line end, CRLF included (one Character in Swift).
                var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
                if lines.last == "" { lines.removeLast() }
                return lines
            }
            let wanted = example.expected.filter { $0 != "…" }.count
            let deadline = Date().addingTimeInterval(15)
            func group() -> pid_t? {
                while Date() < deadline {
                    if let text = try? String(contentsOf: groupFile, encoding: .utf8), let pid = pid_t(text.filter(\.isNumber)) { return pid }
                    usleep(5_000)
                }
                return nil
            }
            if example.runsUntilInterrupted || example.runsInBackground {
                while shown().count < wanted && Date() < deadline { usleep(20_000) }
                usleep(300_000)
                guard let group = group() else {
                    failures.append("README line \(example.line): `\(example.command)` did not start")
                    continue
                }
                if example.runsInBackground {
                    background.append(group)
                } else {
                    kill(-group, SIGINT)
                    let stopped = Date().addingTimeInterval(5)
                    while process.isRunning && Date() < stopped { usleep(10_000) }
                    if process.isRunning { kill(-group, SIGKILL) }
                }
            } else {
                while process.isRunning && Date() < deadline { usleep(10_000) }
                if process.isRunning {
                    if let group = group() { kill(-group, SIGKILL) }
                    failures.append("README line \(example.line): `\(example.command)` did not finish within 15 s")
                    continue
                }
            }

            // setsid's own note when an interrupted command did not exit by itself.
            let actual = shown().filter { !$0.hasPrefix("setsid: ") }.map {
                Example.normalized($0.replacingOccurrences(of: #"\b\#(registry.port)\b"#, with: "5001", options: .regularExpression)
                    .replacingOccurrences(of: #"\b\#(otherPort)\b"#, with: "8001", options: .regularExpression)
                    .replacingOccurrences(of: #"\b\#(dnsPort)\b"#, with: "8600", options: .regularExpression))
            }
            let expected = Self.trimmed(example.expected.map(Example.normalized))
            if !Example.matches(expected: expected, actual: Self.trimmed(actual)) {
                failures.append("README line \(example.line): `\(example.command)`\n  README shows:\n    "
                    + example.expected.joined(separator: "\n    ") + "\n  the registry answered:\n    "
                    + shown().joined(separator: "\n    "))
            }
            if !example.runsUntilInterrupted && !example.runsInBackground {
                if process.terminationStatus != example.exitStatus {
                    failures.append("README line \(example.line): `\(example.command)` exited \(process.terminationStatus), "
                        + "the README says \(example.exitStatus)")
                }
                let statuses = ((try? String(contentsOf: statusFile, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int($0) }
                let expectedStatuses = example.statuses.isEmpty ? nil : example.statuses
                if let expectedStatuses, statuses != expectedStatuses {
                    failures.append("README line \(example.line): `\(example.command)` answered \(statuses), the README says \(expectedStatuses)")
                } else if expectedStatuses == nil, let odd = statuses.first(where: { !(200..<300).contains($0) }) {
                    failures.append("README line \(example.line): `\(example.command)` answered \(odd) without a `# \(odd)` note")
                }
            }
        }
        #expect(failures.isEmpty, Comment(rawValue: "\(failures.count) of \(examples.count) README examples differ:\n\n" + failures.joined(separator: "\n\n")))
    }
}
