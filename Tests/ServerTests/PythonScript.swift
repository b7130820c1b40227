import Foundation

/// A test script of `Tests/` run with a client library's own Python (its virtualenv under
/// `.build/`, from scripts/install-test-tools.sh): its exit status and its output, stdout and
/// stderr together.
enum PythonScript {
    static func run(_ python: URL, _ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = python
        process.arguments = [LiveConsulTests.root.appendingPathComponent(script).path] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }
}
