import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// registryctl against a live registry: output, exit codes, `watch` and `run`.
@Suite struct RegistryctlTests {
    let registry: RegistryProcess

    init() throws {
        registry = try RegistryProcess()
    }

    static var binaryURL: URL {
        RegistryProcess.binaryURL.deletingLastPathComponent().appendingPathComponent("registryctl")
    }

    struct Outcome {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    private func ctl(_ arguments: [String], registryURL: String? = nil) throws -> Outcome {
        let process = Process()
        process.executableURL = Self.binaryURL
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["REGISTRY_URL"] = registryURL ?? "http://127.0.0.1:\(registry.port)"
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }

    private func discover(_ service: String) throws -> [[String: Any]] {
        let reply = try registry.client().request("GET", "/discover/\(service)?status=any")
        return reply.status == 200 ? reply.json["instances"] as? [[String: Any]] ?? [] : []
    }

    @Test func writesAndReadsWithTablesJSONAndExitCodes() throws {
        var outcome = try ctl(["register", "api", "http://a:1", "--tag", "v2", "--tag", "canary", "--meta", "region=eu",
                               "--weight", "7", "--zone", "z1", "--ttl", "90s", "--id", "a-1"])
        #expect(outcome.status == 0)
        #expect(outcome.stdout == "Service api registered at http://a:1\n")
        let instance = try #require(try discover("api").first)
        #expect(instance["id"] as? String == "a-1")
        #expect(instance["tags"] as? [String] == ["v2", "canary"])
        #expect(instance["metadata"] as? [String: String] == ["region": "eu"])
        #expect(instance["weight"] as? Int == 7)
        #expect(instance["ttl_seconds"] as? Int == 90)

        outcome = try ctl(["discover", "api"])
        #expect(outcome.status == 0)
        let lines = outcome.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("ID") == true && lines.first?.contains("ADDRESS") == true)
        #expect(lines.count == 2 && lines[1].hasPrefix("a-1"))
        outcome = try ctl(["--json", "discover", "api", "--tag", "canary", "--pick", "round-robin", "--limit", "1"])
        #expect(outcome.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any]
        #expect(json?["count"] as? Int == 1)

        #expect(try ctl(["heartbeat", "api", "a-1"]).status == 0)
        #expect(try ctl(["status", "api", "a-1", "out_of_service"]).status == 0)
        #expect(try discover("api").first?["status"] as? String == "OUT_OF_SERVICE")
        outcome = try ctl(["services"])
        #expect(outcome.stdout.contains("SERVICE") && outcome.stdout.contains("\napi "))
        outcome = try ctl(["health"])
        #expect(outcome.status == 0 && outcome.stdout.hasPrefix("healthy"))

        // Exit codes that scripts branch on.
        outcome = try ctl(["heartbeat", "api", "nobody"])
        #expect(outcome.status == 4)
        #expect(outcome.stderr.contains("has no instance at nobody"))
        outcome = try ctl(["register", "api", "x", "--weight", "0"])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("weight must be an integer from 1 to 1000"))
        #expect(try ctl(["register", "api"]).status == 2)
        #expect(try ctl(["frobnicate"]).status == 2)
        // A status word is checked before anything is sent: one of the four, in any case.
        outcome = try ctl(["status", "api", "a-1", "asleep"])
        #expect(outcome.status == 2)
        #expect(outcome.stderr.contains("the status takes one of UP, STARTING, DOWN, OUT_OF_SERVICE, got 'asleep'"))
        #expect(try ctl(["register", "api", "x", "--status", "sideways"]).status == 2)
        outcome = try ctl(["health"], registryURL: "http://127.0.0.1:1")
        #expect(outcome.status == 3)
        #expect(outcome.stderr.contains("cannot reach the registry at http://127.0.0.1:1"))
        #expect(try ctl(["deregister", "api", "a-1"]).status == 0)
        #expect(try ctl(["deregister", "api", "a-1"]).status == 4)
    }

    @Test func registersACheck() throws {
        var outcome = try ctl(["register", "web", "http://127.0.0.1:1", "--check-tcp", "127.0.0.1:1", "--check-interval", "5s",
                               "--check-timeout", "500ms", "--check-deregister-after", "1m"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let check = try #require((try discover("web").first?["checks"] as? [[String: Any]])?.first)
        #expect(check["id"] as? String == "service:http://127.0.0.1:1")
        #expect(check["target"] as? String == "127.0.0.1:1")
        #expect(check["interval"] as? String == "5s")
        #expect(check["timeout"] as? String == "500ms")
        #expect(check["deregister_after"] as? String == "1m0s")
        // Nothing listens on port 1: once the check has run, the instance is hidden, and said to be.
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, (try discover("web").first?["checks"] as? [[String: Any]])?.first?["output"] is NSNull { usleep(50_000) }
        outcome = try ctl(["discover", "web"])
        #expect(outcome.stderr.contains("1 instance is registered under 'web' but not UP with passing checks, so hidden"), "\(outcome.stderr)")
        outcome = try ctl(["discover", "web", "--health", "critical"])
        #expect(outcome.stdout.contains("http://127.0.0.1:1"), "\(outcome.stdout)")
        outcome = try ctl(["register", "web", "x", "--check-http", "http://a/", "--check-tcp", "a:1"])
        #expect(outcome.status == 2)
        #expect(outcome.stderr.contains("not both"))
        outcome = try ctl(["register", "web", "x", "--check-http", "gopher://a/"])
        #expect(outcome.status != 0)
        #expect(outcome.stderr.contains("is not an http:// or https:// URL"))
    }

    @Test func helpVersionAndWhatAnEmptyAnswerMeans() throws {
        var outcome = try ctl(["help", "discover"])
        #expect(outcome.status == 0)
        #expect(outcome.stdout.contains("discover SERVICE [--tag T]"))
        #expect(!outcome.stdout.contains("heartbeat SERVICE"))
        #expect(try ctl(["discover", "--help"]).stdout == outcome.stdout)
        #expect(try ctl(["run", "-h"]).stdout.contains("run --service S --address A"))
        outcome = try ctl(["help"])
        #expect(outcome.status == 0 && outcome.stdout.contains("Exit status"))
        outcome = try ctl(["help", "frobnicate"])
        #expect(outcome.status == 2)
        #expect(outcome.stderr.contains("no command 'frobnicate'"))
        #expect(try ctl(["--version"]).stdout.hasPrefix("registryctl "))
        #expect(try ctl(["version"]).stdout == (try ctl(["--version"])).stdout)
        // The options of `run`'s command are the command's, not registryctl's.
        #expect(try ctl(["run", "--service", "s", "--address", "a:1", "--", "/bin/sh", "-c", "exit 3", "--help"]).status == 3)

        // A missing service is named; an empty table says what it hides.
        outcome = try ctl(["discover", "nope"])
        #expect(outcome.status == 4)
        #expect(outcome.stderr.contains("no service 'nope' in the registry"))
        #expect(try ctl(["register", "quiet", "q:1", "--status", "out_of_service"]).status == 0)
        outcome = try ctl(["discover", "quiet"])
        #expect(outcome.status == 0)
        #expect(outcome.stderr.contains("1 instance is registered under 'quiet' but not UP with passing checks, so hidden; --status any shows them"))
        outcome = try ctl(["discover", "quiet", "--tag", "other"])
        #expect(outcome.status == 0 && outcome.stderr.isEmpty)
        #expect(try ctl(["discover", "quiet", "--status", "any"]).stdout.contains("OUT_OF_SERVICE"))
        outcome = try ctl(["discover", "quiet", "--status", "down"])
        #expect(outcome.stderr.contains("1 instance is registered under 'quiet' but not DOWN with passing checks, so hidden"), "\(outcome.stderr)")
    }

    @Test func watchPrintsEachChange() throws {
        let process = Process()
        process.executableURL = Self.binaryURL
        process.arguments = ["--registry", "http://127.0.0.1:\(registry.port)", "watch", "web"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        usleep(300_000)
        #expect(try ctl(["register", "web", "w:1"]).status == 0)
        #expect(try ctl(["register", "web", "w:2"]).status == 0)
        var seen = ""
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline && !seen.contains("2 instances") {
            let data = out.fileHandleForReading.availableData
            if data.isEmpty { break }
            seen += String(decoding: data, as: UTF8.self)
        }
        #expect(seen.contains("web: 0 instances"), "\(seen)")
        #expect(seen.contains("web: 1 instance (1 UP) w:1"), "\(seen)")
        #expect(seen.contains("web: 2 instances (2 UP) w:1 w:2"), "\(seen)")
    }

    /// `watch SERVICE` and `watch` count the same instances in the same words, whatever their
    /// status (an instance out of service is still registered).
    @Test func watchOfOneServiceAndOfAllAgree() throws {
        #expect(try ctl(["register", "web", "w:1"]).status == 0)
        #expect(try ctl(["register", "web", "w:2", "--status", "out_of_service"]).status == 0)
        func firstLine(_ arguments: [String]) throws -> String {
            let process = Process()
            process.executableURL = Self.binaryURL
            process.arguments = ["--registry", "http://127.0.0.1:\(registry.port)"] + arguments
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            defer { if process.isRunning { process.terminate() } }
            var seen = ""
            while !seen.contains("\n") {
                let data = out.fileHandleForReading.availableData
                if data.isEmpty { break }
                seen += String(decoding: data, as: UTF8.self)
            }
            return seen
        }
        let one = try firstLine(["watch", "web"])
        let all = try firstLine(["watch"])
        #expect(one.contains("web: 2 instances (1 UP, 1 OUT_OF_SERVICE) w:1 w:2"), "\(one)")
        #expect(all.contains("1 service: web 2 instances (1 UP, 1 OUT_OF_SERVICE)"), "\(all)")
        #expect(try firstLine(["watch", "web", "--status", "up"]).contains("web: 1 instance (1 UP) w:1\n"))
    }

    /// Something else at the registry's URL (a web server's HTML 404) is named as such, exit 3,
    /// not read as "no such service".
    @Test func aServerThatIsNotARegistryIsReportedAsSuch() throws {
        let (listener, port) = try ExampleServiceTests.listeningSocket()
        let stopped = DispatchSemaphore(value: 0)
        let server = Thread {
            defer { stopped.signal() }
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 { return }
                var request = [UInt8](repeating: 0, count: 4096)
                _ = recv(client, &request, request.count, 0)
                let page = "<html><body>Not Found</body></html>"
                let answer = Array("HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: \(page.utf8.count)\r\nConnection: close\r\n\r\n\(page)".utf8)
                _ = send(client, answer, answer.count, Int32(MSG_NOSIGNAL))
                close(client)
            }
        }
        server.start()
        defer {
            // The thread stops (its accept fails) before the descriptor is closed, so that it
            // never accepts on a number another test has been given meanwhile.
            shutdown(listener, Int32(SHUT_RDWR))
            stopped.wait()
            close(listener)
        }
        let outcome = try ctl(["discover", "api"], registryURL: "http://127.0.0.1:\(port)")
        #expect(outcome.status == 3)
        #expect(outcome.stderr.contains("answered 404 with Content-Type text/html, not as a registry does"), "\(outcome.stderr)")
        // Another JSON service (the example service, say): its 404 is not a registry's either.
        let servicePort = try ExampleServiceTests.freePort()
        let (service, _) = try ExampleServiceTests.launch(["other", String(servicePort)], registryPort: registry.port)
        defer { kill(service.processIdentifier, SIGKILL) }
        let up = Date().addingTimeInterval(5)
        while (try? TestHTTPClient(port: servicePort).request("GET", "/health").status) != 200 && Date() < up { usleep(50_000) }
        let other = try ctl(["services"], registryURL: "http://127.0.0.1:\(servicePort)")
        #expect(other.status == 3)
        #expect(other.stderr.contains("answered 404 in a way the registry never does"), "\(other.stderr)")
    }

    @Test func runPassesTheExitCodeOnAndDeregisters() throws {
        let outcome = try ctl(["run", "--service", "job", "--address", "j:1", "--", "sh", "-c", "exit 3"])
        #expect(outcome.status == 3)
        #expect(outcome.stderr.contains("Service job registered at j:1"))
        #expect(outcome.stderr.contains("deregistered"))
        #expect(try discover("job").isEmpty)
        // A command that cannot start is never registered, not even for a moment.
        let missing = try ctl(["run", "--service", "never", "--address", "n:1", "--", "/no/such/program"])
        #expect(missing.status == 127)
        #expect(missing.stderr.contains("cannot start /no/such/program") && missing.stderr.contains("nothing was registered"))
        #expect(!missing.stderr.contains("registered at"))
        #expect(!registry.log.contains("service=never"))
        #expect(try ctl(["run", "--service", "job", "--address", "j:1", "--", "sh", "-c", "kill -KILL $$"]).status == 128 + 9)
    }

    @Test func runDeregistersOnSIGTERMAndPassesTheSignalOn() throws {
        let process = Process()
        process.executableURL = Self.binaryURL
        process.arguments = ["--registry", "http://127.0.0.1:\(registry.port)", "run", "--service", "svc", "--address", "s:1",
                             "--interval", "0.2s", "--", "sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.05; done"]
        let err = Pipe()
        process.standardError = err
        try process.run()
        let listed = Date().addingTimeInterval(5)
        while try discover("svc").isEmpty && Date() < listed { usleep(50_000) }
        #expect(try discover("svc").count == 1)

        // The registry forgets it (as after an expiry): the next heartbeat registers it again.
        #expect(try registry.client().request("POST", "/deregister", body: #"{"service":"svc","address":"s:1"}"#).status == 200)
        let back = Date().addingTimeInterval(5)
        while try discover("svc").isEmpty && Date() < back { usleep(50_000) }
        #expect(try discover("svc").count == 1, "not registered again")

        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationStatus == 7)
        #expect(try discover("svc").isEmpty)
        // Out of discovery first, then the signal passed on.
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let deregistered = try #require(log.range(of: "Service svc at s:1 deregistered"), "\(log)")
        let passed = try #require(log.range(of: "passing SIGTERM to sh"), "\(log)")
        #expect(deregistered.lowerBound < passed.lowerBound)
        #expect(log.contains("registering again"))
    }

    @Test func runStartsTheCommandEvenWhenTheRegistryIsDown() throws {
        let outcome = try ctl(["--timeout", "1", "run", "--service", "job", "--address", "j:2", "--", "sh", "-c", "exit 5"],
                              registryURL: "http://127.0.0.1:1")
        #expect(outcome.status == 5)
        #expect(outcome.stderr.contains("the command runs anyway"))
    }
}
