import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The real binary on 127.0.0.1:0, spoken to over real sockets.
@Suite struct LiveServerTests {
    let registry: RegistryProcess

    init() throws {
        registry = try RegistryProcess(["--heartbeat-timeout", "30"])
    }

    private func body(_ service: String, _ address: String) -> String {
        #"{"service":"\#(service)","address":"\#(address)"}"#
    }

    @Test func everyRowOfTheSeedAPI() throws {
        let http = try registry.client()

        var reply = try http.request("POST", "/register", body: body("user-service", "http://localhost:8001"))
        #expect(reply.status == 201)
        #expect(reply.header("Content-Type") == "application/json")
        #expect(reply.json["status"] as? String == "registered")
        #expect(reply.json["message"] as? String == "Service user-service registered at http://localhost:8001")

        reply = try http.request("POST", "/register", body: body("user-service", "http://localhost:8001"))
        #expect(reply.status == 200)
        #expect(reply.json["status"] as? String == "updated")
        #expect(reply.json["message"] as? String == "Service user-service at http://localhost:8001 heartbeat updated")

        reply = try http.request("POST", "/heartbeat", body: body("user-service", "http://localhost:8001"))
        #expect(reply.status == 200)
        #expect(reply.text == #"{"status":"ok","message":"Heartbeat updated"}"#)

        reply = try http.request("POST", "/heartbeat", body: body("nobody", "http://localhost:1"))
        #expect(reply.status == 404)
        #expect(reply.json["status"] as? String == "not_found")
        reply = try http.request("POST", "/heartbeat", body: body("user-service", "http://localhost:9"))
        #expect(reply.status == 404)
        #expect(reply.json["status"] as? String == "not_found")

        reply = try http.request("GET", "/discover/user-service")
        #expect(reply.status == 200)
        #expect(reply.json["service"] as? String == "user-service")
        #expect(reply.json["count"] as? Int == 1)
        let instances = reply.json["instances"] as? [[String: Any]] ?? []
        #expect(instances.count == 1)
        #expect(instances.first?["address"] as? String == "http://localhost:8001")
        #expect((instances.first?["uptime_seconds"] as? Double).map { $0 >= 0 && $0 < 30 } == true)

        reply = try http.request("GET", "/discover/payment-service")
        #expect(reply.status == 404)
        #expect(reply.text == #"{"service":"payment-service","instances":[],"message":"Service payment-service not found"}"#)

        _ = try http.request("POST", "/register", body: body("user-service", "http://localhost:8002"))
        _ = try http.request("POST", "/register", body: body("payment-service", "http://localhost:8003"))
        reply = try http.request("GET", "/services")
        #expect(reply.status == 200)
        #expect(reply.text == #"{"services":{"payment-service":{"total_instances":1,"active_instances":1,"#
            + #""instances_by_status":{"UP":1},"instances_by_health":{"passing":1},"tags":[],"zones":[],"index":4},"#
            + #""user-service":{"total_instances":2,"active_instances":2,"instances_by_status":{"UP":2},"#
            + #""instances_by_health":{"passing":2},"tags":[],"zones":[],"index":3}},"total_services":2}"#)

        reply = try http.request("GET", "/health")
        #expect(reply.status == 200)
        #expect(reply.json["status"] as? String == "healthy")
        let timestamp = reply.json["timestamp"] as? String ?? ""
        #expect(ISO8601DateFormatter.withFractionalSeconds.date(from: timestamp) != nil, "timestamp \(timestamp)")

        reply = try http.request("POST", "/deregister", body: body("user-service", "http://localhost:8001"))
        #expect(reply.status == 200)
        #expect(reply.json["status"] as? String == "deregistered")
        reply = try http.request("POST", "/deregister", body: body("user-service", "http://localhost:8001"))
        #expect(reply.status == 404)
        #expect(reply.json["status"] as? String == "not_found")
        reply = try http.request("POST", "/deregister", body: body("ghost-service", "http://localhost:8001"))
        #expect(reply.status == 404)
        #expect(reply.json["status"] as? String == "not_found")

        // The last instance takes its service out of /services and /discover.
        _ = try http.request("POST", "/deregister", body: body("payment-service", "http://localhost:8003"))
        reply = try http.request("GET", "/services")
        let remaining = reply.json["services"] as? [String: [String: Any]]
        #expect(remaining?.keys.sorted() == ["user-service"])
        #expect(remaining?["user-service"]?["total_instances"] as? Int == 1)
        #expect(reply.json["total_services"] as? Int == 1)
        #expect(try http.request("GET", "/discover/payment-service").status == 404)

        #expect(registry.log.contains("INFO registered service=user-service id=http://localhost:8001 address=http://localhost:8001"))
        #expect(registry.log.contains("INFO deregistered service=user-service id=http://localhost:8001"))
    }

    @Test func uptimeCountsFromTheFirstRegistration() throws {
        let http = try registry.client()
        _ = try http.request("POST", "/register", body: body("api", "a"))
        usleep(400_000)
        _ = try http.request("POST", "/register", body: body("api", "a"))
        let instances = try http.request("GET", "/discover/api").json["instances"] as? [[String: Any]]
        let uptime = instances?.first?["uptime_seconds"] as? Double ?? 0
        #expect(uptime >= 0.3, "uptime \(uptime) was reset by the re-registration")
    }

    @Test func bodiesAreAcceptedWhateverTheirContentType() throws {
        let http = try registry.client()
        let form = try http.request("POST", "/register", body: body("api", "a"),
                                    headers: ["Content-Type": "application/x-www-form-urlencoded"])
        #expect(form.status == 201)
        let none = try http.request("POST", "/heartbeat", body: body("api", "a"))
        #expect(none.status == 200)
    }

    /// Every class of bad input gets a 400 JSON error naming the problem, and nothing changes.
    @Test(arguments: [
        ("{not json", "not valid JSON"),
        ("", "request body is empty"),
        ("   ", "request body is empty"),
        ("[1,2]", "must be a JSON object"),
        ("\"text\"", "must be a JSON object"),
        ("null", "must be a JSON object"),
        (#"{"address":"a"}"#, "missing field 'service'"),
        (#"{"service":"api"}"#, "missing field 'address'"),
        (#"{"service":null,"address":"a"}"#, "field 'service' must be a string, got null"),
        (#"{"service":42,"address":"a"}"#, "field 'service' must be a string, got a number"),
        (#"{"service":"api","address":["a"]}"#, "field 'address' must be a string, got an array"),
        (#"{"service":"","address":"a"}"#, "service name must not be empty"),
        (#"{"service":"api","address":""}"#, "address must not be empty"),
        (#"{"service":"my service","address":"a"}"#, "only letters, digits"),
        (#"{"service":"api","address":"a\u0007b"}"#, "U+0007, a control or format character"),
        (#"{"service":"api","address":"a\nb"}"#, "U+000A, a control or format character"),
        ("{\"service\":\"api\",\"address\":\"a\u{1}b\"}", "unescaped control character"),
        (#"{"service":"api","address":"\ud800"}"#, "lone surrogate"),
        (#"{"service":"api","service":"web","address":"a"}"#, "duplicate member name"),
        (#"{"service":"api","address":"a"} trailing"#, "unexpected data after the JSON value"),
        (String(repeating: "[", count: 100) + String(repeating: "]", count: 100), "nesting deeper than"),
        (#"{"service":"\#(String(repeating: "s", count: 254))","address":"a"}"#, "the limit is 253"),
        (#"{"service":"api","address":"\#(String(repeating: "x", count: 1025))"}"#, "the limit is 1024"),
        (#"{"service":"api","address":"existing","adress":"typo"}"#, #"unknown field "adress""#),
    ])
    func badInputIsRefusedAndChangesNothing(input: String, expected: String) throws {
        let http = try registry.client()
        _ = try http.request("POST", "/register", body: body("api", "existing"))
        let before = try http.request("GET", "/services").text
        for path in ["/register", "/heartbeat", "/deregister"] {
            let reply = try http.request("POST", path, body: input)
            #expect(reply.status == 400, "\(path) \(input.prefix(60))")
            #expect(reply.json["status"] as? String == "error")
            let message = reply.json["message"] as? String ?? ""
            #expect(message.contains(expected), "\(path): \(message)")
        }
        #expect(try http.request("GET", "/services").text == before)
        #expect(try http.request("GET", "/discover/api").json["count"] as? Int == 1)
    }

    /// Each rule an optional registration field breaks has its own message.
    @Test(arguments: [
        (#""weight":0"#, "weight must be an integer from 1 to 1000, got 0"),
        (#""weight":2.5"#, "field 'weight' must be an integer, got 2.5"),
        (#""weight":"100""#, "field 'weight' must be an integer, got a string"),
        (#""tags":"v1""#, "field 'tags' must be an array of strings, got a string"),
        (#""tags":["v1",2]"#, "element 1 is a number"),
        (#""tags":["v1","v1"]"#, "appears twice in tags"),
        (#""metadata":{"k":1}"#, "field 'metadata' must be an object of strings"),
        (#""metadata":{"a b":"v"}"#, #"metadata key "a b" contains a space"#),
        (#""zone":"eu west""#, #"zone "eu west" contains a space"#),
        (#""status":"SLEEPING""#, "field 'status' must be one of UP, STARTING, DOWN, OUT_OF_SERVICE"),
        (#""ttl_seconds":0.2"#, "ttl_seconds must be from 1s to 3600s"),
        (#""ttl_seconds":"10""#, "field 'ttl_seconds' must be a number or null"),
        (#""id":"""#, "id must not be empty"),
        // Typos are refused, not dropped with the default left in their place.
        (#""ttl":5"#, #"unknown field "ttl"; this request takes service, address, id, tags, metadata, weight, zone, status, ttl_seconds"#),
        (#""tag":["x"]"#, #"unknown field "tag""#),
    ])
    func badRegistrationFieldsAreRefused(field: String, expected: String) throws {
        let http = try registry.client()
        let reply = try http.request("POST", "/register", body: #"{"service":"api","address":"a","# + field + "}")
        #expect(reply.status == 400)
        #expect((reply.json["message"] as? String ?? "").contains(expected), "\(reply.text)")
        #expect(try http.request("GET", "/discover/api").status == 404)
    }

    @Test func invalidUTF8IsRefused() throws {
        let http = try registry.client()
        var request = Data("POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\n".utf8)
        request.append(Data(#"{"service":"api","address":"a"#.utf8))
        request.append(contentsOf: [0xFF])
        request.append(Data("\"}".utf8))
        try http.send(request)
        let reply = try http.readReply()
        #expect(reply.status == 400)
        #expect((reply.json["message"] as? String ?? "").contains("invalid UTF-8"))
        #expect(try http.request("GET", "/services").text == #"{"services":{},"total_services":0}"#)
    }

    @Test func wrongMethodGets405WithAllow() throws {
        let http = try registry.client()
        for (method, path, allow) in [("GET", "/register", "POST"), ("PUT", "/heartbeat", "POST"),
                                      ("DELETE", "/deregister", "POST"), ("POST", "/services", "GET, HEAD"),
                                      ("POST", "/discover/api", "GET, HEAD"), ("PATCH", "/health", "GET, HEAD"),
                                      ("OPTIONS", "/register", "POST")] {
            let reply = try http.request(method, path, body: method == "GET" ? nil : "")
            #expect(reply.status == 405, "\(method) \(path)")
            #expect(reply.header("Allow") == allow)
            #expect(reply.json["status"] as? String == "error")
        }
    }

    @Test func headIsAnsweredWithoutBody() throws {
        let http = try registry.client()
        _ = try http.request("POST", "/register", body: body("api", "10.0.0.1:80"))
        for path in ["/health", "/discover/api", "/services", "/discover/nobody"] {
            let get = try http.request("GET", path)
            let head = try http.request("HEAD", path)
            #expect(head.status == get.status, "\(path)")
            #expect(head.body.isEmpty)
            // The length a GET would carry, as HTTP asks of a HEAD answer.
            #expect(head.header("Content-Length") == String(get.body.count), "\(path)")
            // The connection is still in step: the next answer starts with its own status
            // line, not with a body sent after the HEAD answer.
            let next = try http.request("GET", "/health")
            #expect(next.statusLine == "HTTP/1.1 200 OK", "\(path)")
        }
    }

    @Test func unknownPathGets404() throws {
        let http = try registry.client()
        for path in ["/", "/nope", "/discover", "/services/extra", "/register/"] {
            let reply = try http.request("GET", path)
            #expect(reply.status == 404, "\(path)")
            #expect(reply.json["status"] as? String == "error")
            #expect((reply.json["message"] as? String ?? "").contains("no such endpoint"))
        }
    }

    @Test func oversizedBodyGets413AsJSON() throws {
        let small = try RegistryProcess(["--max-body-bytes", "1024"])
        let http = try small.client()
        let padding = String(repeating: "x", count: 2_000)
        let reply = try http.request("POST", "/register", body: #"{"service":"api","address":"\#(padding)"}"#)
        #expect(reply.status == 413)
        #expect(reply.header("Content-Type") == "application/json")
        #expect(reply.json["status"] as? String == "error")
        #expect((reply.json["message"] as? String ?? "").contains("--max-body-bytes"))
        #expect(try small.client().request("GET", "/services").text == #"{"services":{},"total_services":0}"#)
    }

    @Test func oversizedHeadersGet431AsJSON() throws {
        let http = try registry.client()
        let reply = try http.request("GET", "/health", headers: ["X-Padding": String(repeating: "p", count: 10_000)])
        #expect(reply.status == 431)
        #expect(reply.statusLine == "HTTP/1.1 431 Request Header Fields Too Large")
        #expect(reply.header("Content-Type") == "application/json")
        #expect(reply.json["status"] as? String == "error")
    }

    @Test(arguments: [
        Data([0x00, 0xFF, 0x13, 0x37, 0x0D, 0x0A, 0x0D, 0x0A]),
        Data("GET /health HTTP/1.1\r\nContent-Length: -5\r\n\r\n".utf8),
        Data("POST /register HTTP/1.1\r\nContent-Length: abc\r\n\r\n".utf8),
        Data(("GET /" + String(repeating: "a", count: 100_000) + " HTTP/1.1\r\n\r\n").utf8),
        Data("GET /health HTTP/9.9\r\n\r\n".utf8),
        Data("\r\n\r\n\r\n".utf8),
        Data("GARBAGE\r\n\r\n".utf8),
    ])
    func protocolGarbageNeitherCrashesNorStalls(garbage: Data) throws {
        let http = try registry.client(timeout: 3)
        try? http.send(garbage)
        // Whatever the answer (a 400, or a close), it comes promptly.
        if let reply = try? http.readReply() {
            #expect((400..<500).contains(reply.status) || reply.status == 501 || reply.status == 505)
            #expect(reply.header("Content-Type") == "application/json")
        }
        #expect(try registry.client().request("GET", "/health").status == 200)
    }

    @Test func keepAliveServesManyRequestsOnOneConnection() throws {
        let http = try registry.client()
        for index in 0..<200 {
            let reply = try http.request("POST", "/register", body: body("keep", "a\(index)"))
            #expect(reply.status == 201)
        }
        #expect(try http.request("GET", "/discover/keep").json["count"] as? Int == 200)
        // Pipelined: three requests in one write, three answers in order.
        try http.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /discover/keep HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try http.readReply().status == 200)
        #expect(try http.readReply().status == 200)
        #expect(try http.readReply().status == 404)
    }

    @Test func discoverPathIsPercentDecoded() throws {
        let http = try registry.client()
        _ = try http.request("POST", "/register", body: body("billing.v2_eu-west", "10.0.0.1:80"))
        let reply = try http.request("GET", "/discover/billing%2Ev2%5Feu%2dwest")
        #expect(reply.status == 200)
        #expect(reply.json["service"] as? String == "billing.v2_eu-west")
        let notFound = try http.request("GET", "/discover/missing%2Dservice")
        #expect(notFound.status == 404)
        #expect(notFound.json["service"] as? String == "missing-service")
        for bad in ["/discover/a%2", "/discover/a%zz", "/discover/a%FF", "/discover/a%2Fb", "/discover/a%20b", "/discover/"] {
            let reply = try http.request("GET", bad)
            #expect(reply.status == 400, "\(bad)")
            #expect(reply.json["status"] as? String == "error")
        }
    }

    @Test func idleConnectionsAreClosed() throws {
        let impatient = try RegistryProcess(["--idle-timeout", "0.3"])
        let http = try impatient.client(timeout: 3)
        let started = Date()
        #expect(http.waitForClose())
        #expect(Date().timeIntervalSince(started) < 2.5)
        // A client that sends half a request is timed out as well.
        let slow = try impatient.client(timeout: 3)
        try slow.send("POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ser")
        #expect(slow.waitForClose())
    }
}

@Suite struct LiveLifecycleTests {
    @Test func instancesExpireAfterASubSecondTimeout() throws {
        let registry = try RegistryProcess(["--heartbeat-timeout", "0.3"])
        let http = try registry.client()
        _ = try http.request("POST", "/register", body: #"{"service":"short","address":"a"}"#)
        _ = try http.request("POST", "/register", body: #"{"service":"short","address":"kept"}"#)
        #expect(try http.request("GET", "/discover/short").json["count"] as? Int == 2)
        for _ in 0..<4 {
            usleep(150_000)
            #expect(try http.request("POST", "/heartbeat", body: #"{"service":"short","address":"kept"}"#).status == 200)
        }
        let reply = try http.request("GET", "/discover/short")
        #expect(reply.json["count"] as? Int == 1)
        #expect(registry.waitForLog { $0.contains("INFO expired service=short id=a address=a ") })
        // The timer, not a read, removes the last one: the log shows it without any request.
        #expect(registry.waitForLog(timeout: 2) { $0.contains("INFO expired service=short id=kept address=kept ") })
        #expect(try http.request("GET", "/discover/short").status == 404)
        #expect(try http.request("GET", "/services").text == #"{"services":{},"total_services":0}"#)
        #expect(registry.log.contains("Heartbeat timeout: 0.3s"))
    }

    /// Their default action would end the process with no drain and no last fsync. SIGHUP
    /// reloads the ACL file; without one it says there is nothing to reload.
    @Test func hangupAndUserSignalsAreLoggedAndOtherwiseIgnored() throws {
        let registry = try RegistryProcess()
        kill(registry.process.processIdentifier, SIGHUP)
        #expect(registry.waitForLog { $0.contains("INFO acl_reload_skipped ") })
        for (signal, name) in [(SIGUSR1, "SIGUSR1"), (SIGUSR2, "SIGUSR2"), (SIGALRM, nil)] {
            kill(registry.process.processIdentifier, signal)
            if let name { #expect(registry.waitForLog { $0.contains("INFO signal_ignored signal=\(name) ") }) }
            #expect(try registry.client().request("GET", "/health").status == 200)
        }
        #expect(registry.stop() == 0)
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func stopSignalExitsCleanlyWithinASecond(signal: Int32) throws {
        let registry = try RegistryProcess()
        let http = try registry.client()
        #expect(try http.request("GET", "/health").status == 200)
        let started = Date()
        let status = registry.stop(signal: signal, timeout: 3)
        #expect(status == 0)
        #expect(Date().timeIntervalSince(started) < 1)
        #expect(registry.log.contains("INFO stopping signal="))
        #expect(registry.log.contains("INFO stopped"))
        #expect(throws: (any Error).self) { try registry.client().request("GET", "/health") }
    }

    @Test func stopAnswersARequestThatIsAlreadyIn() throws {
        let registry = try RegistryProcess()
        let http = try registry.client()
        // Half a request, then the signal, then the rest: it is still answered.
        try http.send("POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\n{\"service\":\"late\",")
        kill(registry.process.processIdentifier, SIGTERM)
        usleep(50_000)
        try http.send("\"address\":\"a\"}")
        #expect(try http.readReply().status == 201)
        #expect(registry.stop(timeout: 3) == 0)
    }

    @Test func portZeroPrintsTheRealPort() throws {
        let registry = try RegistryProcess()
        #expect(registry.port != 0)
        #expect(registry.log.contains("Service Registry starting on port \(registry.port)..."))
    }

    @Test func environmentConfiguresAndFlagsWin() throws {
        let registry = try RegistryProcess(["--heartbeat-timeout", "2.5"],
                                           environment: ["REGISTRY_HEARTBEAT_TIMEOUT": "7", "REGISTRY_MAX_BODY_BYTES": "4096"])
        #expect(registry.log.contains("Heartbeat timeout: 2.5s"))
        #expect(registry.log.contains("max_body_bytes=4096"))
    }

    @Test(arguments: [
        (["--port", "70000"], "--port must be an integer from 0 to 65535"),
        (["--heartbeat-timeout", "0"], "--heartbeat-timeout must be a number of seconds"),
        (["--heartbeat-timeout", "abc"], "--heartbeat-timeout must be a number of seconds"),
        (["--heartbeat-timeout", "5000"], "--heartbeat-timeout (5000s) must not be above --max-ttl (3600s)"),
        (["--log-level", "loud"], "--log-level must be one of"),
        (["--max-body-bytes", "-1"], "--max-body-bytes must be an integer"),
        (["--bogus"], "unknown option '--bogus'"),
        (["--port"], "--port needs a value"),
        (["--allowed-origins", "http://a:99999"], "--allowed-origins must list origins like"),
        (["--max-output-bytes", "5"], "--max-output-bytes must be an integer from 1048576"),
    ])
    func invalidConfigurationIsRefusedAtStart(arguments: [String], message: String) throws {
        let (status, output) = try RegistryProcess.runToExit(arguments)
        #expect(status == 2)
        #expect(output.contains(message), "\(output)")
    }

    /// The error says who holds the port: a registry serving, one draining after SIGTERM
    /// (it keeps the port through its grace period), or some other program.
    @Test func portInUseIsAClearError() throws {
        let first = try RegistryProcess(["--shutdown-grace", "30"])
        var (status, output) = try RegistryProcess.runToExit(["--host", "127.0.0.1", "--port", String(first.port)])
        #expect(status == 1)
        #expect(output.contains("cannot listen on 127.0.0.1:\(first.port)"), "\(output)")
        #expect(output.contains("another registry is serving there"), "\(output)")
        kill(first.process.processIdentifier, SIGTERM)
        #expect(first.waitForLog { $0.contains("INFO draining") })
        (status, output) = try RegistryProcess.runToExit(["--host", "127.0.0.1", "--port", String(first.port)])
        #expect(status == 1)
        #expect(output.contains("another registry is draining there (it was sent SIGTERM"), "\(output)")
        #expect(first.stop(signal: SIGINT) == 0)

        // A socket that listens and never answers.
        let (holder, heldPort) = try ExampleServiceTests.listeningSocket()
        defer { close(holder) }
        (status, output) = try RegistryProcess.runToExit(["--host", "127.0.0.1", "--port", String(heldPort)])
        #expect(status == 1)
        #expect(output.contains("another program holds that port"), "\(output)")
    }

    @Test func aHostThatDoesNotResolveIsAClearError() throws {
        let (status, output) = try RegistryProcess.runToExit(["--host", "no-such-host.invalid", "--port", "0"])
        #expect(status == 1)
        #expect(output.contains("cannot listen on no-such-host.invalid:0: the host name does not resolve"), "\(output)")
        #expect(!output.contains("another registry"))
    }

    @Test func helpListsEveryFlagAndVariable() throws {
        let process = Process()
        process.executableURL = RegistryProcess.binaryURL
        process.arguments = ["--help"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0)
        for flag in ["--host", "--port", "--heartbeat-timeout", "--max-body-bytes", "--max-header-bytes", "--idle-timeout",
                     "--log-level", "--data-dir", "--in-memory", "--fsync", "--repair", "REGISTRY_DATA_DIR", "REGISTRY_HOST", "REGISTRY_PORT", "REGISTRY_HEARTBEAT_TIMEOUT", "REGISTRY_LOG_LEVEL"] {
            #expect(text.contains(flag), "\(flag)")
        }
    }
}

extension ISO8601DateFormatter {
    nonisolated(unsafe) static let withFractionalSeconds: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()
}
