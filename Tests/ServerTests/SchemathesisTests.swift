import Foundation
import Testing

/// openapi.yaml against the live binary, by schemathesis (PyPI; `make test` installs it into
/// .build/tools): valid requests must be accepted and answered as documented, invalid and
/// out-of-range ones refused with a documented 4xx, undeclared methods answered 405.
@Suite struct SchemathesisTests {
    /// The package's root: the folder above the build folder that holds Package.swift.
    static var packageRoot: URL {
        var folder = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: folder.appendingPathComponent("Package.swift").path), folder.path != "/" {
            folder = folder.deletingLastPathComponent()
        }
        return folder
    }

    /// Open (no ACL file), and with an ACL file whose operator token schemathesis sends.
    @Test(arguments: [false, true]) func theLiveServerDoesWhatItsOpenAPIDocumentSays(withTokens: Bool) throws {
        let tool = Self.packageRoot.appendingPathComponent(".build/tools/bin/schemathesis")
        try #require(FileManager.default.isExecutableFile(atPath: tool.path),
                     "schemathesis is missing: run scripts/install-test-tools.sh (make test does)")
        // Blocking queries are cut to 50 ms, so that the generated ones (index=17,
        // wait=30s) come back within the request timeout.
        let reports = FileManager.default.temporaryDirectory.appendingPathComponent("schemathesis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: reports, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: reports) }
        var flags = ["--max-wait", "0.05"]
        var headers: [String] = []
        if withTokens {
            let token = "schemathesis-operator-token-0123456789"
            let acl = reports.appendingPathComponent("acl.json")
            try #"{"tokens": [{"name": "ops", "token": "\#(token)", "operator": true}], "anonymous": {"read": ["public-*"]}}"#
                .write(to: acl, atomically: true, encoding: .utf8)
            flags += ["--acl-file", acl.path]
            headers = ["--header", "Authorization: Bearer \(token)"]
        }
        let registry = try RegistryProcess(flags)
        let run = Process()
        run.executableURL = tool
        // The streams (GET /watch, /watch/{service}) never end by design; their HEAD forms are
        // tested. A fixed seed keeps the run reproducible; `--mode all` sends invalid and
        // out-of-range values as well as valid ones.
        run.arguments = [
            "run", Self.packageRoot.appendingPathComponent("openapi.yaml").path,
            "--url", "http://127.0.0.1:\(registry.port)", "--mode", "all", "--checks", "all",
            "--max-examples", "100", "--seed", "2026", "--workers", "1", "--request-timeout", "5",
            "--exclude-operation-id", "watchService", "--exclude-operation-id", "watchAll",
            "--no-color", "--generation-database", "none", "--report-dir", reports.path,
        ] + headers
        run.currentDirectoryURL = FileManager.default.temporaryDirectory
        let output = Pipe()
        run.standardOutput = output
        run.standardError = output
        try run.run()
        // Bounded: a run that hangs is stopped (and fails) after four minutes; it takes
        // about twenty seconds.
        let watchdog = DispatchWorkItem { if run.isRunning { run.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 240, execute: watchdog)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        run.waitUntilExit()
        watchdog.cancel()
        #expect(run.terminationStatus == 0, "schemathesis found failures:\n\(text.suffix(8000))")
        #expect(text.contains(" passed"), "\(text.suffix(2000))")
    }
}
