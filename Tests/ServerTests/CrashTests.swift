import Foundation
import Testing

/// Runs `scripts/crash-test.py`: clients register as fast as they can, the registry is killed
/// with SIGKILL, restarted on the same data directory, and every acknowledged registration
/// must be there.
@Suite struct CrashTests {
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/crash-test.py")

    private func run(fsync: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script.path, "--binary", RegistryProcess.binaryURL.path, "--fsync", fsync,
                             "--clients", "8", "--seconds", "1", "--rounds", "2"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    @Test(arguments: ["always", "everysec"])
    func everyAcknowledgedRegistrationSurvivesSIGKILL(fsync: String) throws {
        let (status, output) = try run(fsync: fsync)
        #expect(status == 0, "\(output)")
        let summary = try #require(output.split(separator: "\n").first { $0.hasPrefix("crash-test summary") }, "\(output)")
        #expect(summary.contains(" lost=0"), "\(output)")
        #expect(!summary.contains(" acknowledged=0 "), "\(output)")
    }
}
