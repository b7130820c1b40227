import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The transport under evhttp, against the real binary: framing rules on the wire, header
/// and body deadlines, the connection limit and running out of descriptors.
@Suite struct LiveTransportTests {
    let registry: RegistryProcess

    init() throws {
        registry = try RegistryProcess(["--header-timeout", "1", "--body-timeout", "1", "--idle-timeout", "30"])
    }

    private func register(_ http: TestHTTPClient, _ address: String) throws -> Int {
        try http.request("POST", "/register", body: #"{"service":"api","address":"\#(address)"}"#).status
    }

    private func addresses() throws -> [String] {
        let reply = try registry.client().request("GET", "/discover/api")
        return (reply.json["instances"] as? [[String: Any]] ?? []).compactMap { $0["address"] as? String }
    }

    /// Each smuggling vector: refused with its status, as JSON, with `Connection: close`; the
    /// connection closes; and the request hidden in it never runs.
    @Test(arguments: [
        ("GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: %LEN%\r\n\r\n%SMUGGLED%", 400),
        ("GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: %LEN%\r\n\r\n%SMUGGLED%", 400),
        ("POST /heartbeat HTTP/1.1\r\nHost: x\r\nContent-Length: +%LEN%\r\n\r\n%SMUGGLED%", 400),
        ("POST /heartbeat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x2d\r\n%SMUGGLED%\r\n0\r\n\r\n", 411),
        ("POST /heartbeat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 2d\r\n%SMUGGLED%\r\n0\r\n\r\n", 411),
        ("POST /heartbeat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+2d\r\n%SMUGGLED%\r\n0\r\n\r\n", 411),
        ("POST /heartbeat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2d;x=y\r\n%SMUGGLED%\r\n0\r\n\r\n", 411),
        ("POST /heartbeat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n%SMUGGLED%\r\n0\r\n\r\n", 411),
        ("POST /heartbeat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\n{}%SMUGGLED%", 400),
        ("GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\u{0}\r\nContent-Length: %LEN%\r\n\r\n%SMUGGLED%", 400),
        ("GET /health HTTP/1.1\r\n\r\n%SMUGGLED%", 400),
        ("GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n%SMUGGLED%", 400),
        ("GET /health HTTP/1.99999999999\r\nHost: x\r\n\r\n%SMUGGLED%", 505),
        ("CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n%SMUGGLED%", 405),
        ("QUERY /health HTTP/1.1\r\nHost: x\r\n\r\n%SMUGGLED%", 405),
    ])
    func smugglingIsRefusedAndNothingHiddenRuns(template: String, status: Int) throws {
        let setup = try registry.client()
        #expect(try register(setup, "victim") == 201)
        let smuggled = "POST /deregister HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\n\r\n{\"service\":\"api\",\"address\":\"victim\"}"
        let request = template.replacingOccurrences(of: "%LEN%", with: String(smuggled.utf8.count))
            .replacingOccurrences(of: "%SMUGGLED%", with: smuggled)
        let http = try registry.client(timeout: 3)
        try http.send(request)
        let reply = try http.readReply()
        #expect(reply.status == status, "\(request.prefix(80).debugDescription)")
        #expect(reply.header("Content-Type") == "application/json")
        #expect(reply.header("Connection") == "close")
        #expect(reply.json["status"] as? String == "error")
        if status == 405 { #expect(reply.header("Allow") != nil) }
        #expect(http.waitForClose())
        #expect(try addresses() == ["victim"])
    }

    @Test func requestsBeforeARefusalAreAnsweredInOrder() throws {
        let http = try registry.client(timeout: 3)
        try http.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            + "POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\n\r\n{\"service\":\"api\",\"address\":\"one\"}"
            + "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy"
            + "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try http.readReply().status == 200)
        #expect(try http.readReply().status == 201)
        let refused = try http.readReply()
        #expect(refused.status == 400)
        #expect((refused.json["message"] as? String)?.contains("Content-Length") == true)
        #expect(http.waitForClose())
        #expect(try addresses() == ["one"])
    }

    /// Slowloris: headers at a byte a second, many connections at once. Each is answered
    /// 408 and closed at the header deadline, whatever the idle timeout.
    @Test func slowHeadersAreCutAtTheDeadline() throws {
        let clients = try (0..<40).map { _ in try registry.client(timeout: 5) }
        let started = Date()
        let head = Array("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8)
        for step in 0..<6 {
            for client in clients { try? client.send(Data([head[step]])) }
            usleep(200_000)
        }
        for client in clients {
            if let reply = try? client.readReply() {
                #expect(reply.status == 408)
                #expect((reply.json["message"] as? String)?.contains("--header-timeout") == true)
            }
            #expect(client.waitForClose())
        }
        // Well before the 30 s idle timeout, whatever this machine's load.
        #expect(Date().timeIntervalSince(started) < 20)
        #expect(try registry.client().request("GET", "/health").status == 200)
        let metrics = try registry.client().request("GET", "/metrics").text
        #expect(metrics.contains(#"registry_http_timeouts_total{phase="header"} 40"#), "\(metrics)")
    }

    @Test func aSlowBodyIsCutAtTheDeadline() throws {
        let http = try registry.client(timeout: 5)
        try http.send("POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n{")
        for _ in 0..<3 {
            usleep(300_000)
            try? http.send(" ")
        }
        let reply = try http.readReply()
        #expect(reply.status == 408)
        #expect((reply.json["message"] as? String)?.contains("--body-timeout") == true)
        #expect(http.waitForClose())
    }

    /// The deadline is the client's only while the registry waits for it: a long-poll held
    /// for longer than the header timeout, with half the next request queued behind it, is
    /// answered, and the rest of that request is still read.
    @Test func aHeldRequestDoesNotRunTheDeadlineOfTheOneBehindIt() throws {
        let http = try registry.client(timeout: 6)
        try http.send("GET /discover/api?index=1&wait=2500ms HTTP/1.1\r\nHost: x\r\n\r\nGET /hea")
        let held = try http.readReply()
        #expect(held.status == 404)
        try http.send("lth HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try http.readReply().status == 200)
    }

    @Test func oneOverTheConnectionLimitIsTold503() throws {
        let limited = try RegistryProcess(["--max-connections", "4"])
        var held = try (0..<4).map { _ in try limited.client() }
        #expect(try held[0].request("GET", "/health").status == 200)
        let extra = try limited.client(timeout: 3)
        let reply = try extra.readReply()
        #expect(reply.status == 503)
        #expect(reply.header("Retry-After") == "1")
        #expect((reply.json["message"] as? String)?.contains("--max-connections 4") == true)
        #expect(extra.waitForClose())
        // The held connections still work, and a freed slot takes a new one.
        #expect(try held[1].request("GET", "/health").status == 200)
        held.removeLast()
        usleep(100_000)
        let replacement = try limited.client()
        #expect(try replacement.request("GET", "/health").status == 200)
        let metrics = try replacement.request("GET", "/metrics").text
        #expect(metrics.contains("registry_connections_refused_total 1"))
        #expect(metrics.contains("registry_open_connections 4"))
    }

    /// Out of descriptors, accepting pauses and is logged once per interval instead of
    /// spinning a core and flooding the log; once descriptors free up, clients are served.
    @Test func runningOutOfDescriptorsNeitherSpinsNorFloodsTheLog() throws {
        let starved = try RegistryProcess(["--max-connections", "1000"], wrapper: ["/usr/bin/prlimit", "--nofile=64:64", "--"])
        var clients: [TestHTTPClient] = []
        for _ in 0..<100 {
            if let client = try? starved.client(timeout: 1) { clients.append(client) }
        }
        usleep(1_500_000)
        let errors = starved.log.components(separatedBy: "\n").filter { $0.contains("accept_failed") }
        #expect(errors.count >= 1 && errors.count <= 2, "\(errors.count) accept_failed lines")
        #expect(!starved.log.contains("Error from accept() call"))
        clients.removeAll()
        usleep(300_000)
        let http = try starved.client()
        #expect(try http.request("GET", "/health").status == 200)
        let metrics = try http.request("GET", "/metrics").text
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("registry_accept_errors_total ") } ?? ""
        let count = Int(line.split(separator: " ").last ?? "") ?? -1
        // A pause of 100 ms per failure: a few dozen over the test, where a spinning loop
        // fails hundreds of thousands of times.
        #expect(count >= 1 && count < 200, "\(line)")
    }
}
