import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What operators rely on: /metrics (checked by promtool), /ready through a shutdown, and
/// JSON logs.
@Suite struct LiveOperabilityTests {
    private func register(_ http: TestHTTPClient, _ service: String, _ address: String) throws -> Int {
        try http.request("POST", "/register", body: #"{"service":"\#(service)","address":"\#(address)"}"#).status
    }

    /// promtool from Debian's prometheus package; `make test` installs it
    /// (scripts/install-test-tools.sh).
    static let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test func metricsCountWhatHappenedAndPassPromtool() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("registry-metrics-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let registry = try RegistryProcess(["--data-dir", directory, "--heartbeat-timeout", "0.3"])
        let http = try registry.client()
        #expect(try register(http, "api", "a:1") == 201)
        #expect(try register(http, "api", "a:2") == 201)
        #expect(try register(http, "short", "s:1") == 201)
        #expect(try http.request("POST", "/deregister", body: #"{"service":"api","address":"a:2"}"#).status == 200)
        #expect(try http.request("GET", "/discover/api").status == 200)
        #expect(try http.request("GET", "/discover/nobody").status == 404)
        #expect(try http.request("POST", "/register", body: "{").status == 400)
        // One expiry: "short" stops heartbeating while "api" keeps going.
        for _ in 0..<4 {
            usleep(150_000)
            #expect(try http.request("POST", "/heartbeat", body: #"{"service":"api","address":"a:1"}"#).status == 200)
        }
        #expect(registry.waitForLog { $0.contains("INFO expired service=short") })

        let reply = try http.request("GET", "/metrics")
        #expect(reply.status == 200)
        #expect(reply.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
        let text = reply.text
        for line in [
            #"registry_http_requests_total{route="/register",method="POST",code="201"} 3"#,
            #"registry_http_requests_total{route="/register",method="POST",code="400"} 1"#,
            #"registry_http_requests_total{route="/discover/{service}",method="GET",code="404"} 1"#,
            #"registry_http_requests_total{route="/heartbeat",method="POST",code="200"} 4"#,
            #"registry_instances{status="UP"} 1"#,
            "registry_services 1",
            "registry_registrations_total 3",
            "registry_deregistrations_total 1",
            "registry_expirations_total 1",
            "registry_persistence_enabled 1",
            "registry_persistence_write_errors_total 0",
            #"registry_http_request_duration_seconds_count{route="/register"} 4"#,
        ] {
            #expect(text.contains(line + "\n"), "missing: \(line)")
        }
        #expect(text.contains("registry_open_connections 1\n"), "the test's own connection")
        #expect(text.contains("process_resident_memory_bytes "))

        let promtool = try #require(Self.promtool, "promtool is missing: run scripts/install-test-tools.sh (make test does)")
        let check = Process()
        check.executableURL = URL(fileURLWithPath: promtool)
        check.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        check.standardInput = input
        check.standardOutput = output
        check.standardError = output
        try check.run()
        input.fileHandleForWriting.write(reply.body)
        try input.fileHandleForWriting.close()
        let findings = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        check.waitUntilExit()
        #expect(check.terminationStatus == 0, "\(findings)")
        #expect(findings.isEmpty, "\(findings)")
    }

    @Test func readyTurns503ForTheGracePeriodWhileEverythingElseIsServed() throws {
        let registry = try RegistryProcess(["--shutdown-grace", "1"])
        let http = try registry.client()
        #expect(try http.request("GET", "/ready").status == 200)
        let signalled = Date()
        kill(registry.process.processIdentifier, SIGTERM)
        #expect(registry.waitForLog { $0.contains("INFO draining signal=SIGTERM grace=1s") })
        let ready = try http.request("GET", "/ready")
        #expect(ready.status == 503)
        #expect(ready.json["status"] as? String == "draining")
        #expect(try http.request("GET", "/health").status == 200)
        #expect(try register(http, "late", "l:1") == 201)
        #expect(try registry.client().request("GET", "/discover/late").status == 200)
        let status = registry.stop(signal: 0, timeout: 5)
        #expect(status == 0)
        let took = Date().timeIntervalSince(signalled)
        #expect(took >= 1 && took < 3, "exited \(took) s after SIGTERM")
        #expect(registry.log.contains("INFO closing"))
    }

    /// Ctrl-C at a terminal: no grace period, whatever `--shutdown-grace` says; the start-up
    /// lines say how each signal behaves.
    @Test func sigintClosesAtOnceAndTheBannerSaysSo() throws {
        let registry = try RegistryProcess(["--shutdown-grace", "30"])
        #expect(registry.log.contains("Stop: Ctrl-C (SIGINT) closes at once; SIGTERM drains for 30s first (/ready answers 503)"))
        let started = Date()
        #expect(registry.stop(signal: SIGINT, timeout: 3) == 0)
        #expect(Date().timeIntervalSince(started) < 1.5)
        #expect(registry.log.contains("INFO stopping signal=SIGINT grace=none"))
        #expect(!registry.log.contains("INFO draining"))
    }

    @Test func aSecondSignalEndsTheGracePeriod() throws {
        let registry = try RegistryProcess(["--shutdown-grace", "30"])
        kill(registry.process.processIdentifier, SIGTERM)
        #expect(registry.waitForLog { $0.contains("INFO draining") })
        #expect(try registry.client().request("GET", "/ready").status == 503)
        let started = Date()
        #expect(registry.stop(signal: SIGINT, timeout: 3) == 0)
        #expect(Date().timeIntervalSince(started) < 1.5)
        #expect(registry.log.contains("INFO stopping signal=SIGINT grace=\"cut short\""))
    }

    @Test func jsonLogsAreOneObjectPerLine() throws {
        let registry = try RegistryProcess(["--log-format", "json", "--log-level", "debug"])
        let http = try registry.client()
        #expect(try http.request("POST", "/register", body: #"{"service":"api","address":"a \"quoted\" address"}"#).status == 201)
        #expect(try http.request("GET", "/discover/api").status == 200)
        #expect(registry.stop() == 0)
        let lines = registry.log.split(separator: "\n")
        #expect(lines.count >= 6)
        var events: [String] = []
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            let parsed = try #require(object, "not a JSON object: \(line)")
            #expect(parsed["time"] is String && parsed["level"] is String)
            events.append(parsed["event"] as? String ?? "")
            if parsed["event"] as? String == "registered" {
                #expect(parsed["address"] as? String == "a \"quoted\" address")
            }
            if parsed["event"] as? String == "listening" {
                #expect(parsed["port"] as? Int == Int(registry.port))
            }
        }
        #expect(events.contains("banner") && events.contains("registered") && events.contains("request") && events.contains("stopped"))
    }
}
