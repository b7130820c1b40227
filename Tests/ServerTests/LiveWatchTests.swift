import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Blocking queries and event streams against the real binary.
@Suite struct LiveWatchTests {
    let registry: RegistryProcess

    init() throws {
        registry = try RegistryProcess(["--heartbeat-timeout", "30"])
    }

    private func register(_ service: String, _ address: String, extra: String = "") throws {
        let reply = try registry.client().request("POST", "/register", body: #"{"service":"\#(service)","address":"\#(address)"\#(extra)}"#)
        #expect(reply.status == 201 || reply.status == 200)
    }

    private func index(_ reply: TestHTTPClient.Reply) -> UInt64 {
        UInt64(reply.header("X-Registry-Index") ?? "") ?? 0
    }

    private func sendGet(_ client: TestHTTPClient, _ path: String) throws {
        try client.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
    }

    /// True when nothing arrives on `client` within `seconds`.
    private func staysQuiet(_ client: TestHTTPClient, for seconds: Double) -> Bool {
        let started = Date()
        do {
            _ = try client.readReply()
            return false
        } catch {
            return Date().timeIntervalSince(started) >= seconds * 0.9
        }
    }

    @Test func aBlockingQueryWakesOnAChangeOfItsService() throws {
        try register("api", "a")
        let current = index(try registry.client().request("GET", "/discover/api"))
        #expect(current > 1)
        // Behind the index: at once.
        let stale = try registry.client().request("GET", "/discover/api?index=\(current - 1)&wait=10s")
        #expect(stale.status == 200)

        let watcher = try registry.client(timeout: 10)
        try sendGet(watcher, "/discover/api?index=\(current)&wait=10s")
        let other = try registry.client(timeout: 0.4)
        try sendGet(other, "/discover/web?index=0&wait=10s")
        usleep(100_000)
        let started = Date()
        try register("api", "b")
        let woken = try watcher.readReply()
        #expect(Date().timeIntervalSince(started) < 2)
        #expect(woken.status == 200)
        #expect(index(woken) > current)
        #expect(woken.json["count"] as? Int == 2)
        // A watcher of another service was not woken.
        #expect(staysQuiet(other, for: 0.4))
    }

    @Test func aBlockingQueryTimesOutWithTheSameState() throws {
        try register("api", "a")
        let current = index(try registry.client().request("GET", "/discover/api"))
        let watcher = try registry.client(timeout: 5)
        let started = Date()
        let reply = try watcher.request("GET", "/discover/api?index=\(current)&wait=300ms")
        let elapsed = Date().timeIntervalSince(started)
        #expect(reply.status == 200)
        #expect(index(reply) == current)
        // The wait, plus at most 1/16 of jitter, plus scheduling slack.
        #expect(elapsed >= 0.29 && elapsed < 2, "answered after \(elapsed) s")
        // The connection is kept alive afterwards.
        #expect(try watcher.request("GET", "/health").status == 200)
    }

    @Test func aMissingServiceCanBeWaitedFor() throws {
        let watcher = try registry.client(timeout: 10)
        try sendGet(watcher, "/discover/later?index=0&wait=10s")
        usleep(100_000)
        try register("later", "x")
        let reply = try watcher.readReply()
        #expect(reply.status == 200)
        #expect(reply.json["count"] as? Int == 1)
    }

    @Test func servicesCanBeWaitedOnAsAWhole() throws {
        let current = index(try registry.client().request("GET", "/services"))
        let watcher = try registry.client(timeout: 10)
        try sendGet(watcher, "/services?index=\(current)&wait=10s")
        usleep(100_000)
        try register("anything", "x")
        let reply = try watcher.readReply()
        #expect(index(reply) > current)
        #expect((reply.json["services"] as? [String: Any])?["anything"] != nil)
    }

    @Test func manyChangesInOneTurnWakeAWatcherOnce() throws {
        try register("api", "a")
        let current = index(try registry.client().request("GET", "/discover/api"))
        let watcher = try registry.client(timeout: 10)
        try sendGet(watcher, "/discover/api?index=\(current)&wait=10s")
        try sendGet(watcher, "/health")
        usleep(100_000)
        // Pipelined writes: one read on the server side, one loop turn.
        let writer = try registry.client()
        var batch = ""
        for address in ["b", "c", "d"] {
            let body = #"{"service":"api","address":"\#(address)"}"#
            batch += "POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        }
        try writer.send(batch)
        for _ in 0..<3 { _ = try writer.readReply() }
        let woken = try watcher.readReply()
        #expect(woken.status == 200)
        // The pipelined /health behind the parked query is answered next, in order.
        #expect(try watcher.readReply().json["status"] as? String == "healthy")
    }

    @Test func aQuietStreamOutlivesAShortIdleTimeout() throws {
        let impatient = try RegistryProcess(["--idle-timeout", "0.6"])
        let stream = try impatient.client(timeout: 5)
        try sendGet(stream, "/watch")
        let started = Date()
        let text = try readStream(stream, until: { $0.contains(": keep-alive") })
        #expect(text.contains(": keep-alive"))
        #expect(Date().timeIntervalSince(started) < 2)
        usleep(800_000)
        // Still open: a change arrives as an event.
        _ = try impatient.client().request("POST", "/register", body: #"{"service":"late","address":"x"}"#)
        let after = try readStream(stream, until: { $0.contains(#""late""#) })
        #expect(after.contains(#""late""#))
    }

    @Test func aStreamSendsTheStateThenEachChange() throws {
        try register("api", "a")
        let stream = try registry.client(timeout: 5)
        try sendGet(stream, "/watch/api")
        var text = try readStream(stream, until: { $0.contains("\n\n") })
        #expect(text.hasPrefix("HTTP/1.1 200"))
        #expect(text.contains("Content-Type: text/event-stream"))
        #expect(text.contains("event: state\ndata: {\"service\":\"api\""))
        try register("api", "b")
        text += try readStream(stream, until: { $0.contains("event: state") })
        let ids = text.replacingOccurrences(of: "\r", with: "").components(separatedBy: "\n").filter { $0.hasPrefix("id: ") }.compactMap { UInt64($0.dropFirst(4)) }
        #expect(ids.count == 2, "\(text)")
        #expect(ids[1] > ids[0])
        #expect(text.contains(#""address":"b""#))
    }

    @Test func aStreamOfEverythingFollowsEveryService() throws {
        let stream = try registry.client(timeout: 5)
        try sendGet(stream, "/watch")
        _ = try readStream(stream, until: { $0.contains("\n\n") })
        try register("one", "x")
        try register("two", "y")
        let text = try readStream(stream, until: { $0.contains(#""two":"#) })
        #expect(text.contains(#""one":"#))
    }

    @Test func vanishedWatchersAreDroppedWithoutHarm() throws {
        try register("api", "a")
        let current = index(try registry.client().request("GET", "/discover/api"))
        for _ in 0..<50 {
            let gone = try registry.client()
            try sendGet(gone, "/discover/api?index=\(current)&wait=60s")
        }
        for _ in 0..<10 {
            let gone = try registry.client()
            try sendGet(gone, "/watch/api")
        }
        // All those clients are closed by now (their objects are gone); a change must not
        // trip over them, and the server must keep serving.
        usleep(200_000)
        try register("api", "b")
        usleep(100_000)
        #expect(try registry.client().request("GET", "/health").status == 200)
        #expect(try registry.client().request("GET", "/discover/api").json["count"] as? Int == 2)
    }

    @Test func stopAnswersHeldRequests() throws {
        try register("api", "a")
        let current = index(try registry.client().request("GET", "/discover/api"))
        let watcher = try registry.client(timeout: 5)
        try sendGet(watcher, "/discover/api?index=\(current)&wait=60s")
        let stream = try registry.client(timeout: 5)
        try sendGet(stream, "/watch/api")
        usleep(100_000)
        kill(registry.process.processIdentifier, SIGTERM)
        let reply = try watcher.readReply()
        #expect(reply.status == 200)
        #expect(registry.stop(timeout: 3) == 0)
    }

    private func readStream(_ client: TestHTTPClient, until done: (String) -> Bool) throws -> String {
        var collected = ""
        let deadline = Date().addingTimeInterval(5)
        while !done(collected) && Date() < deadline {
            collected += String(decoding: try client.receiveSome(), as: UTF8.self)
        }
        return collected
    }
}
