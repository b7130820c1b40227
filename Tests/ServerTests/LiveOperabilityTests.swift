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

        let findings = try Self.promtoolFindings(reply.body)
        #expect(findings.isEmpty, "\(findings)")
    }

    /// What `promtool check metrics` says of an exposition (empty: nothing).
    static func promtoolFindings(_ exposition: Data) throws -> String {
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
        input.fileHandleForWriting.write(exposition)
        try input.fileHandleForWriting.close()
        let findings = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        check.waitUntilExit()
        return check.terminationStatus == 0 ? findings : "promtool exited \(check.terminationStatus): \(findings)"
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

    /// The request lines of a log, each as its `key=value` fields.
    private func accessLines(_ log: String) -> [[String: String]] {
        log.split(separator: "\n").filter { $0.contains(" INFO request ") }.map { line in
            var fields: [String: String] = [:]
            for part in line.split(separator: " ").dropFirst(3) {
                let pair = part.split(separator: "=", maxSplits: 1)
                if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
            }
            return fields
        }
    }

    /// One line per answered request, with what an operator needs to follow it; a held
    /// request once, when it ends, with why.
    @Test func theAccessLogHasALinePerAnsweredRequest() throws {
        let registry = try RegistryProcess(["--access-log"])
        #expect(registry.log.contains("access_log=on"))
        let http = try registry.client()
        let registered = try http.request("POST", "/register", body: #"{"service":"api","address":"http://a:1"}"#)
        #expect(registered.status == 201)
        #expect(try http.request("GET", "/discover/api?tag=nope&_=123").status == 200)
        #expect(try http.request("GET", "/discover/api?tags=x").status == 400)
        // Held: a wait that passes, a wait that a change ends, a client that leaves.
        #expect(try http.request("GET", "/discover/api?index=99&wait=300ms").status == 200)
        let waiting = try registry.client()
        try waiting.send("GET /discover/api?index=99&wait=30s HTTP/1.1\r\nHost: x\r\n\r\n")
        var leaving: TestHTTPClient? = try registry.client()
        try leaving?.send("GET /discover/other?index=5&wait=30s HTTP/1.1\r\nHost: x\r\n\r\n")
        var stream: TestHTTPClient? = try registry.client()
        try stream?.send("GET /watch/api HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try stream?.receiveSome()
        usleep(200_000)
        #expect(try http.request("POST", "/register", body: #"{"service":"api","address":"http://a:2"}"#).status == 201)
        #expect(try waiting.readReply().status == 200)
        leaving = nil
        #expect(registry.waitForLog { $0.contains("status=499") })
        usleep(100_000)
        _ = try stream?.receiveSome()
        stream = nil
        #expect(registry.waitForLog { $0.contains("target=/watch/api") })
        #expect(registry.stop() == 0)

        let lines = accessLines(registry.log)
        func line(_ target: String) -> [String: String]? { lines.first { $0["target"] == target } }
        let register = try #require(line("/register"))
        #expect(register["method"] == "POST" && register["status"] == "201" && register["bytes"] == String(registered.text.utf8.count))
        #expect(register["client"]?.hasPrefix("127.0.0.1:") == true)
        #expect(Double(register["duration_ms"] ?? "") != nil && register["end"] == nil)
        #expect(line("/discover/api?tag=nope&_=123")?["status"] == "200")
        #expect(line("/discover/api?tags=x")?["status"] == "400")
        #expect(registry.log.contains(#"status=400 bytes="#) && registry.log.contains(#"error="unknown query parameter 'tags';"#))
        let timedOut = try #require(line("/discover/api?index=99&wait=300ms"))
        #expect(timedOut["end"] == "timeout" && (Double(timedOut["held_ms"] ?? "") ?? 0) >= 300)
        #expect(line("/discover/api?index=99&wait=30s")?["end"] == "change")
        let gone = try #require(line("/discover/other?index=5&wait=30s"))
        #expect(gone["status"] == "499" && gone["end"] == "client_gone" && gone["bytes"] == "0")
        let streamed = try #require(line("/watch/api"))
        #expect(streamed["status"] == "200" && streamed["end"] == "client_gone")
        // Two events: the first state, and the one after the second registration.
        #expect((Int(streamed["bytes"] ?? "") ?? 0) > 2 * 200)
        // The old debug line is gone.
        #expect(!registry.log.contains("handling="))
    }

    /// Off by default; `--log-level debug` turns it on; in JSON, numbers are numbers.
    @Test func theAccessLogIsOffByDefaultAndOnWithDebug() throws {
        let quiet = try RegistryProcess()
        #expect(try quiet.client().request("GET", "/health").status == 200)
        #expect(quiet.stop() == 0)
        #expect(!quiet.log.contains(" request "))
        #expect(quiet.log.contains("access_log=off"))

        let debug = try RegistryProcess(["--log-level", "debug", "--log-format", "json"])
        #expect(try debug.client().request("GET", "/health").status == 200)
        #expect(debug.stop() == 0)
        let object = try #require(debug.log.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.first { $0["event"] as? String == "request" })
        #expect(object["target"] as? String == "/health" && object["status"] as? Int == 200)
        #expect(object["duration_ms"] is Double || object["duration_ms"] is Int)
        #expect(object["bytes"] as? Int ?? 0 > 0)
    }
}
