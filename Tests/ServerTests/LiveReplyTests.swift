import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// How replies leave the server: written to the socket as soon as they are made, with the
/// connection then handed back to evhttp for the next request. These cover the paths where
/// that write cannot finish the job at once: a reply bigger than the socket takes, a
/// connection that must close after its reply, and requests pipelined behind one another.
@Suite struct LiveReplyTests {
    let registry: RegistryProcess

    init() throws {
        registry = try RegistryProcess(["--heartbeat-timeout", "60"])
    }

    @Test func aReplyBiggerThanTheSocketTakesArrivesWholeAndTheConnectionServesOn() throws {
        let writer = try registry.client()
        // About 6 MB in all: more than a loopback socket's send buffer grows to (4 MiB).
        let instances = 700
        let value = String(repeating: "x", count: 500)
        let metadata = "{" + (0..<16).map { #""key\#($0)":"\#(value)""# }.joined(separator: ",") + "}"
        for number in 0..<instances {
            let reply = try writer.request("POST", "/register", body: #"""
                {"service":"big","address":"10.0.\#(number / 256).\#(number % 256):8080","metadata":\#(metadata),"tags":["a","b"]}
                """#)
            try #require(reply.status == 201)
        }

        // A small receive window and no reading for a while: the server's first write takes
        // only part of the reply, and the rest must follow as the client reads.
        let slow = try TestHTTPClient(port: registry.port, timeout: 10, receiveBufferBytes: 4096)
        try slow.send("GET /discover/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.3)
        // Meanwhile the loop serves everyone else.
        let bystander = try registry.client()
        #expect(try bystander.request("GET", "/health").status == 200)

        let reply = try slow.readReply()
        #expect(reply.status == 200)
        #expect(reply.body.count > 5_000_000)
        #expect(reply.json["count"] as? Int == instances)
        #expect((reply.json["instances"] as? [[String: Any]])?.count == instances)
        // The same connection is kept alive and answers the next request.
        let next = try slow.request("GET", "/health")
        #expect(next.status == 200)
    }

    @Test func connectionsThatMustCloseGetTheirWholeReplyFirst() throws {
        let registration = try registry.client()
        #expect(try registration.request("POST", "/register",
                                         body: #"{"service":"api","address":"10.0.0.1:80"}"#).status == 201)

        // HTTP/1.0 without keep-alive: evhttp sends no Content-Length, the close ends the body.
        let old = try registry.client()
        try old.send("GET /discover/api HTTP/1.0\r\n\r\n")
        let whole = try #require(old.readUntilClose())
        let text = String(decoding: whole, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(text.hasSuffix(#""count":1}"#))

        // HTTP/1.1 asking to close: the whole reply, then the close.
        let closing = try registry.client()
        try closing.send("GET /discover/api HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        let reply = try closing.readReply()
        #expect(reply.status == 200)
        #expect(reply.json["count"] as? Int == 1)
        #expect(closing.waitForClose())

        // HTTP/1.0 asking for keep-alive keeps the connection.
        let http = try registry.client()
        for _ in 0..<2 {
            try http.send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            #expect(try http.readReply().status == 200)
        }

        // A write that closes the connection must not disturb the server.
        #expect(try registry.client().request("GET", "/discover/api").status == 200)
    }

    /// The transport writes each answer in the callback that makes it; the socket's
    /// bufferevent would otherwise write it a loop turn later, and the answers would still
    /// arrive, so only the count shows which writer sent them.
    @Test func smallAnswersAreWrittenWholeWhenTheyAreMade() throws {
        func writes(_ outcome: String) throws -> Int {
            let text = try registry.client().request("GET", "/metrics").text
            let line = text.split(separator: "\n").first { $0.hasPrefix("registry_transport_writes_total{outcome=\"\(outcome)\"} ") }
            return Int(try #require(line).split(separator: " ").last ?? "") ?? -1
        }
        let before = try writes("whole")
        let client = try registry.client()
        for _ in 0..<50 {
            #expect(try client.request("GET", "/health").status == 200)
        }
        // Fifty answers and the scrape before them.
        #expect(try writes("whole") - before >= 51)
        #expect(try writes("partial") == 0)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let http = try registry.client()
        let register = #"{"service":"pipe","address":"10.0.0.9:80"}"#
        try http.send("POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: \(register.utf8.count)\r\n\r\n\(register)"
            + "GET /discover/pipe HTTP/1.1\r\nHost: x\r\n\r\n"
            + "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
            + "GET /services HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try http.readReply().status == 201)
        let discovered = try http.readReply()
        #expect(discovered.status == 200)
        #expect(discovered.json["count"] as? Int == 1)
        #expect(try http.readReply().status == 404)
        let services = try http.readReply()
        #expect(services.status == 200)
        #expect(services.text.contains("pipe"))
    }
}
