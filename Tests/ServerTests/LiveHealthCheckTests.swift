import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Active health checks against real processes: the example service as the target, frozen
/// (SIGSTOP: it accepts but never answers, so the check times out), thawed, then killed (the
/// connection is refused) until the check's `deregister_after` removes the instance.
@Suite(.serialized) struct LiveHealthCheckTests {
    private func instances(_ registry: RegistryProcess, _ query: String = "") throws -> [[String: Any]] {
        let reply = try registry.client().request("GET", "/discover/checked" + query)
        return reply.status == 200 ? reply.json["instances"] as? [[String: Any]] ?? [] : []
    }

    private func firstCheck(_ registry: RegistryProcess) throws -> [String: Any]? {
        try instances(registry, "?status=any").first.flatMap { ($0["checks"] as? [[String: Any]])?.first }
    }

    private func waitFor(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(50_000)
        }
        return try condition()
    }

    @Test func aFailingCheckTakesTheInstanceOutBringsItBackAndFinallyDeregistersIt() throws {
        let registry = try RegistryProcess(["--check-allow", "127.0.0.0/8"])
        let port = try ExampleServiceTests.freePort()
        let (target, _) = try ExampleServiceTests.launch(["target", String(port)], registryPort: registry.port, heartbeatInterval: "60")
        defer { if target.isRunning { kill(target.processIdentifier, SIGKILL) } }
        #expect(try waitFor(5) { (try? TestHTTPClient(port: port).request("GET", "/health").status) == 200 })

        let body = #"{"service":"checked","address":"http://127.0.0.1:\#(port)","ttl_seconds":3600,"#
            + #""check":{"http":"http://127.0.0.1:\#(port)/health","interval":"1s","timeout":"400ms","deregister_after":"3s"}}"#
        #expect(try registry.client().request("POST", "/register", body: body).status == 201)
        // Critical until its first run (as Consul): not listed by default, listed with status=any.
        #expect(try instances(registry, "?status=any").count == 1)
        #expect(try waitFor(5) { try instances(registry).count == 1 }, "never passed")
        var check = try #require(try firstCheck(registry))
        #expect(check["status"] as? String == "passing")
        #expect((check["output"] as? String)?.hasPrefix("HTTP GET http://127.0.0.1:\(port)/health: 200 OK Output: ") == true, "\(check)")
        #expect(check["last_run"] is String)
        #expect(try instances(registry).first?["health"] as? String == "passing")
        let passingIndex = try registry.client().request("GET", "/discover/checked").header("X-Registry-Index")

        // Frozen: it accepts connections but answers nothing, so the run times out.
        kill(target.processIdentifier, SIGSTOP)
        #expect(try waitFor(5) { try instances(registry).isEmpty }, "still listed while failing")
        check = try #require(try firstCheck(registry))
        #expect(check["status"] as? String == "critical")
        #expect((check["output"] as? String)?.contains("timed out after 0.4s") == true, "\(check)")
        #expect(try registry.client().request("GET", "/discover/checked?status=any").header("X-Registry-Index") != passingIndex)
        #expect(try instances(registry, "?health=critical").count == 1)
        #expect(try instances(registry, "?status=UP&health=any").count == 1)
        kill(target.processIdentifier, SIGCONT)
        #expect(try waitFor(5) { try instances(registry).count == 1 }, "did not come back")

        // Killed: refused connections, critical for longer than deregister_after: removed.
        kill(target.processIdentifier, SIGKILL)
        target.waitUntilExit()
        #expect(try waitFor(3) { try instances(registry).isEmpty })
        #expect(try waitFor(8) { try registry.client().request("GET", "/discover/checked?status=any").status == 404 }, "not deregistered")
        #expect(registry.waitForLog { $0.contains("check_deregistered service=checked") })

        let metrics = String(decoding: try registry.client().request("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("registry_checks_in_flight 0"))
        #expect(metrics.contains("registry_check_deregistrations_total 1"))
        #expect(metrics.contains(#"registry_check_runs_total{status="passing"}"#))
        #expect(!metrics.contains(#"registry_check_runs_total{status="passing"} 0"#))
    }

    @Test func addressesOutsideTheAllowedNetworksAreNeverContacted() throws {
        let registry = try RegistryProcess(["--check-allow", "10.255.0.0/16"])
        let (socket, port) = try ExampleServiceTests.listeningSocket()
        defer { close(socket) }
        let body = #"{"service":"checked","address":"a","check":{"tcp":"localhost:\#(port)","interval":"1s"}}"#
        #expect(try registry.client().request("POST", "/register", body: body).status == 201)
        #expect(try waitFor(5) { (try firstCheck(registry)?["output"] as? String)?.contains("outside the networks checks may reach") == true })
        #expect(try firstCheck(registry)?["status"] as? String == "critical")
        // Nothing knocked: the listening socket has no connection waiting.
        var readable = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        #expect(poll(&readable, 1, 0) == 0)
    }

    @Test func withChecksOffTheyPassUnrunAndTCPChecksConnect() throws {
        let off = try RegistryProcess(["--checks", "off"])
        let body = #"{"service":"checked","address":"a","check":{"http":"http://127.0.0.1:1/","interval":"1s"}}"#
        #expect(try off.client().request("POST", "/register", body: body).status == 201)
        #expect(try waitFor(3) { try instances(off).count == 1 })
        #expect((try firstCheck(off)?["output"] as? String)?.contains("--checks off") == true)

        let on = try RegistryProcess()
        let (socket, port) = try ExampleServiceTests.listeningSocket()
        defer { close(socket) }
        let tcp = #"{"service":"checked","address":"a","checks":[{"tcp":"127.0.0.1:\#(port)","interval":"1s"},{"tcp":"localhost:1","interval":"1s"}]}"#
        #expect(try on.client().request("POST", "/register", body: tcp).status == 201)
        #expect(try waitFor(5) {
            let checks = try instances(on, "?status=any").first?["checks"] as? [[String: Any]] ?? []
            // Critical is also the verdict before the first run: wait for both outputs.
            return checks.map { $0["status"] as? String } == ["passing", "critical"] && checks.allSatisfy { $0["output"] is String }
        })
        let checks = try instances(on, "?status=any").first?["checks"] as? [[String: Any]] ?? []
        #expect(checks.first?["id"] as? String == "service:a:1")
        #expect((checks.last?["output"] as? String)?.contains("Connection refused") == true, "\(checks)")
    }

    /// A check and its verdict are durable: after a restart the instance is listed at once,
    /// not critical again until a first run.
    @Test func checksAndTheirVerdictsSurviveARestart() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("checks-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (socket, port) = try ExampleServiceTests.listeningSocket()
        defer { close(socket) }
        let body = #"{"service":"checked","address":"a","ttl_seconds":3600,"#
            + #""check":{"tcp":"127.0.0.1:\#(port)","interval":"1m","deregister_after":"1h"}}"#
        do {
            let registry = try RegistryProcess(["--data-dir", directory])
            #expect(try registry.client().request("POST", "/register", body: body).status == 201)
            #expect(try waitFor(5) { try instances(registry).count == 1 })
            #expect(registry.stop() == 0)
        }
        let again = try RegistryProcess(["--data-dir", directory])
        #expect(try instances(again).count == 1)
        let check = try #require(try firstCheck(again))
        #expect(check["status"] as? String == "passing")
        #expect(check["interval"] as? String == "1m0s")
        #expect(check["deregister_after"] as? String == "1h0m0s")
        #expect(check["target"] as? String == "127.0.0.1:\(port)")
    }

    /// A target that closes a kept connection just as the next run sends on it (its idle
    /// timeout near the interval): it answers the first request of each connection and
    /// closes at the second. The run moves to a new connection once, and stays passing.
    @Test func aKeptConnectionClosedUnderARunIsRetriedOnANewOne() throws {
        let (listener, port) = try ExampleServiceTests.listeningSocket()
        defer { close(listener) }
        let accepted = Shared(0)
        let server = Thread {
            while true {
                let connection = accept(listener, nil, nil)
                if connection < 0 { return }
                accepted.update { $0 += 1 }
                Thread {
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    var requests = 0
                    var pending: [UInt8] = []
                    while true {
                        let count = read(connection, &buffer, buffer.count)
                        if count <= 0 { break }
                        pending += buffer[0..<count]
                        while let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
                            pending.removeSubrange(0..<end.upperBound)
                            requests += 1
                            if requests > 1 {
                                close(connection)
                                return
                            }
                            let reply = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8)
                            _ = reply.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
                        }
                    }
                    close(connection)
                }.start()
            }
        }
        server.start()
        let registry = try RegistryProcess()
        let body = #"{"service":"checked","address":"a","check":{"http":"http://127.0.0.1:\#(port)/","interval":"1s","timeout":"500ms"}}"#
        #expect(try registry.client().request("POST", "/register", body: body).status == 201)
        #expect(try waitFor(5) { try instances(registry).count == 1 })
        // Three more runs, each on a connection the target closes under it.
        #expect(try waitFor(6) { accepted.value >= 4 })
        let metrics = String(decoding: try registry.client().request("GET", "/metrics").body, as: UTF8.self)
        let check = try firstCheck(registry) ?? [:]
        #expect(metrics.contains(#"registry_check_runs_total{status="critical"} 0"#), "\(check)")
        #expect(try instances(registry).count == 1)
    }

    @Test func badChecksAreRefusedAndChangeNothing() throws {
        let registry = try RegistryProcess()
        for (body, words) in [
            (#"{"service":"checked","address":"a","check":{"http":"gopher://x/","interval":"1s"}}"#, "is not an http:// or https:// URL"),
            (#"{"service":"checked","address":"a","check":{"tcp":"x:1","interval":"10ms"}}"#, "interval must be from 1s"),
            (#"{"service":"checked","address":"a","check":{"tcp":"x:1","interval":"soon"}}"#, "must be a duration"),
            (#"{"service":"checked","address":"a","check":{"http":"http://x/","headers":{"Content-Length":"1"}}}"#, "set by the checker"),
        ] {
            let reply = try registry.client().request("POST", "/register", body: body)
            #expect(reply.status == 400)
            #expect(reply.json["status"] as? String == "error")
            #expect((reply.json["message"] as? String)?.contains(words) == true, "\(reply.json)")
        }
        #expect(try registry.client().request("GET", "/discover/checked?status=any").status == 404)
    }
}
