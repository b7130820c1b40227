import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The real `service-registry` binary, started on 127.0.0.1 with port 0, its stdout
/// captured to a file so that tests can read the port it chose and the lines it logged.
final class RegistryProcess {
    let process = Process()
    let port: UInt16
    let logURL: URL

    struct StartFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// The binary built next to the test bundle (`swift build` puts both in one folder),
    /// or `REGISTRY_BINARY` when set.
    static var binaryURL: URL {
        if let path = ProcessInfo.processInfo.environment["REGISTRY_BINARY"] { return URL(fileURLWithPath: path) }
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var folder = testBinary.deletingLastPathComponent()
        // On Linux the test runner is <build>/<name>PackageTests.xctest; elsewhere a bundle.
        while !FileManager.default.fileExists(atPath: folder.appendingPathComponent("service-registry").path),
              folder.path != "/" {
            folder = folder.deletingLastPathComponent()
        }
        return folder.appendingPathComponent("service-registry")
    }

    /// In memory unless the arguments name a data directory (a default one would be shared),
    /// and no shutdown grace unless asked for (tests stop registries all the time).
    static func withTestDefaults(_ arguments: [String], _ environment: [String: String] = [:]) -> [String] {
        var defaults: [String] = []
        if !(arguments.contains("--data-dir") || arguments.contains("--in-memory") || environment["REGISTRY_DATA_DIR"] != nil) {
            defaults.append("--in-memory")
        }
        if !arguments.contains("--shutdown-grace") && environment["REGISTRY_SHUTDOWN_GRACE"] == nil {
            defaults += ["--shutdown-grace", "0"]
        }
        return defaults + arguments
    }

    /// `wrapper` runs the binary through another command (`prlimit … --`), which must exec it.
    /// `bare` runs the binary with exactly `arguments` (no test flags or defaults), as a
    /// container would; `directory` is its working directory.
    init(_ arguments: [String] = [], environment: [String: String] = [:], wrapper: [String] = [], bare: Bool = false,
         directory: URL? = nil) throws {
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("registry-test-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let command = bare ? arguments : ["--host", "127.0.0.1", "--port", "0"] + Self.withTestDefaults(arguments, environment)
        if let directory { process.currentDirectoryURL = directory }
        if let launcher = wrapper.first {
            process.executableURL = URL(fileURLWithPath: launcher)
            process.arguments = Array(wrapper.dropFirst()) + [Self.binaryURL.path] + command
        } else {
            process.executableURL = Self.binaryURL
            process.arguments = command
        }
        var merged = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("REGISTRY_") }
        merged.merge(environment) { $1 }
        process.environment = merged
        let handle = try FileHandle(forWritingTo: logURL)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()

        let deadline = Date().addingTimeInterval(10)
        var found: UInt16?
        while found == nil && Date() < deadline && process.isRunning {
            let log = (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
            // The banner, alone on its line in text logs, inside a JSON object in JSON ones.
            if let range = log.range(of: "Service Registry starting on port ") {
                found = UInt16(log[range.upperBound...].prefix { $0.isNumber })
            } else {
                usleep(5_000)
            }
        }
        guard let port = found else {
            if process.isRunning { process.terminate() }
            throw StartFailure(description: "the registry did not start; its output:\n" + ((try? String(contentsOf: logURL, encoding: .utf8)) ?? ""))
        }
        self.port = port
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: logURL)
    }

    /// Runs the binary with `arguments` to its exit (a start-up failure, `--help`) and
    /// returns its status and its stderr. `environment` and `wrapper` as for `init`; with
    /// `bare`, exactly `arguments` and `environment`, as a container would run it.
    static func runToExit(_ arguments: [String], environment: [String: String]? = nil, wrapper: [String] = [],
                          bare: Bool = false) throws -> (status: Int32, stderr: String) {
        let process = Process()
        let command = bare ? arguments : withTestDefaults(arguments)
        if let launcher = wrapper.first {
            process.executableURL = URL(fileURLWithPath: launcher)
            process.arguments = Array(wrapper.dropFirst()) + [binaryURL.path] + command
        } else {
            process.executableURL = binaryURL
            process.arguments = command
        }
        if let environment { process.environment = environment }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = Pipe()
        try process.run()
        let output = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    var log: String {
        (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
    }

    /// The HTTPS port (`--tls-port`), from the banner's "HTTPS on port N" line.
    var tlsPort: UInt16? {
        guard let range = log.range(of: "HTTPS on port ") else { return nil }
        return UInt16(log[range.upperBound...].prefix { $0.isNumber })
    }

    /// The second listener's port (`--consul-port`), from the banner.
    var consulPort: UInt16? {
        guard let range = log.range(of: "Consul clients' port ") else { return nil }
        return UInt16(log[range.upperBound...].prefix { $0.isNumber })
    }

    func client(timeout: Double = 5) throws -> TestHTTPClient {
        try TestHTTPClient(port: port, timeout: timeout)
    }

    /// Sends `signal` and waits up to `timeout` seconds for the exit; returns the status,
    /// or nil if the process was still running.
    func stop(signal: Int32 = SIGTERM, timeout: Double = 5) -> Int32? {
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(2_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Waits until `condition` holds for the log, polling; false after `timeout` seconds.
    func waitForLog(timeout: Double = 5, _ condition: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition(log) { return true }
            usleep(10_000)
        }
        return condition(log)
    }
}
