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

    /// Waits until the registry holds `polls` long-polls and `streams` streams (its
    /// `registry_watchers` gauge): a request sent is not yet a request parked.
    @discardableResult
    private func waitForWatchers(_ registry: RegistryProcess? = nil, polls: Int? = nil, streams: Int? = nil) throws -> Bool {
        let registry = registry ?? self.registry
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            let metrics = try registry.client().request("GET", "/metrics").text
            let held = { (kind: String) -> Int? in
                metrics.split(separator: "\n").first { $0.hasPrefix("registry_watchers{kind=\"\(kind)\"} ") }
                    .flatMap { Int($0.split(separator: " ").last ?? "") }
            }
            if (polls == nil || held("long_poll") == polls) && (streams == nil || held("stream") == streams) { return true }
            usleep(5_000)
        }
        Issue.record("the registry never held \(polls.map(String.init) ?? "any") long-polls and \(streams.map(String.init) ?? "any") streams")
        return false
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
        try waitForWatchers(polls: 2)
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
        try waitForWatchers(polls: 1)
        try register("later", "x")
        let reply = try watcher.readReply()
        #expect(reply.status == 200)
        #expect(reply.json["count"] as? Int == 1)
    }

    @Test func servicesCanBeWaitedOnAsAWhole() throws {
        let current = index(try registry.client().request("GET", "/services"))
        let watcher = try registry.client(timeout: 10)
        try sendGet(watcher, "/services?index=\(current)&wait=10s")
        try waitForWatchers(polls: 1)
        try register("anything", "x")
        let reply = try watcher.readReply()
        #expect(index(reply) > current)
        #expect((reply.json["services"] as? [String: Any])?["anything"] != nil)
    }

    /// Changes made in one loop turn reach a stream as one event: the end-of-turn step
    /// tells watchers once, whatever the turn did. (A long-poll could not show this: it is
    /// answered on its first wake whatever follows.) The registry is stopped while three
    /// clients send a registration each, so that one poll finds all three ready and one turn
    /// handles them. (Pipelined on one connection they would take a turn each: evhttp reads
    /// the next request in the turn after it answers one.)
    @Test func manyChangesInOneTurnWakeAStreamOnce() throws {
        try register("api", "a")
        let stream = try registry.client(timeout: 1)
        try sendGet(stream, "/watch/api")
        var text = try readStream(stream, until: { $0.contains("\n\n") })
        try waitForWatchers(streams: 1)
        let writers = try (0..<3).map { _ in try registry.client() }
        kill(registry.process.processIdentifier, SIGSTOP)
        for (writer, address) in zip(writers, ["b", "c", "d"]) {
            let body = #"{"service":"api","address":"\#(address)"}"#
            try writer.send("POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        }
        kill(registry.process.processIdentifier, SIGCONT)
        for writer in writers { #expect(try writer.readReply().status == 201) }
        text += try readStream(stream, until: { $0.contains(#""address":"d""#) })
        // Anything else would have arrived by now: the events go out in the turn they are made.
        // (The read times out after the client's second of silence.)
        while let chunk = try? stream.receiveSome() { text += String(decoding: chunk, as: UTF8.self) }
        let events = text.components(separatedBy: "event: state").count - 1
        #expect(events == 2, "one event for the state, one for the turn of three changes; got \(events): \(text)")
    }

    /// A parked query is counted in `/metrics` when it is answered, with the status it got.
    @Test func aParkedQueryIsCountedWhenAnswered() throws {
        func answered(_ code: Int) throws -> Int {
            let metrics = try registry.client().request("GET", "/metrics").text
            let prefix = #"registry_http_requests_total{route="/discover/{service}",method="GET",code="\#(code)"} "#
            return metrics.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Int($0.dropFirst(prefix.count)) } ?? 0
        }
        let watcher = try registry.client(timeout: 10)
        try sendGet(watcher, "/discover/soon?index=0&wait=10s")
        try waitForWatchers(polls: 1)
        #expect(try answered(200) == 0)
        #expect(try answered(404) == 0)
        try register("soon", "x")
        #expect(try watcher.readReply().status == 200)
        #expect(try answered(200) == 1)
        // One that times out on a service still missing is counted as the 404 it got.
        let patient = try registry.client(timeout: 10)
        #expect(try patient.request("GET", "/discover/never?index=0&wait=100ms").status == 404)
        #expect(try answered(404) == 1)
    }

    /// A long-poll parked behind a pipelined request is answered first, then the request.
    @Test func aParkedQueryIsAnsweredBeforeTheRequestBehindIt() throws {
        try register("api", "a")
        let current = index(try registry.client().request("GET", "/discover/api"))
        let watcher = try registry.client(timeout: 10)
        try sendGet(watcher, "/discover/api?index=\(current)&wait=10s")
        try sendGet(watcher, "/health")
        try waitForWatchers(polls: 1)
        try register("api", "b")
        let woken = try watcher.readReply()
        #expect(woken.status == 200)
        #expect(woken.json["count"] as? Int == 2)
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
        // Three keep-alives (every 0.3 s) take it past the idle timeout, and it is still open:
        // a change arrives as an event.
        let more = try readStream(stream, until: { $0.components(separatedBy: ": keep-alive").count > 3 })
        #expect(more.components(separatedBy: ": keep-alive").count > 3)
        #expect(Date().timeIntervalSince(started) > 0.6)
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

    @Test func aStreamResumedAtTheCurrentIndexSkipsTheStateItHas() throws {
        try register("api", "a")
        let current = index(try registry.client().request("GET", "/discover/api"))
        // `index=` at the current index: headers, and nothing until the service changes.
        let resumed = try registry.client(timeout: 1)
        try sendGet(resumed, "/watch/api?index=\(current)")
        let head = try readStream(resumed, until: { $0.contains("\r\n\r\n") })
        #expect(head.hasPrefix("HTTP/1.1 200") && !head.contains("event: state"))
        #expect(staysQuiet(resumed, for: 0.5))
        try register("api", "b")
        let next = try readStream(resumed, until: { $0.contains("event: state") })
        #expect(next.contains("id: \(current + 1)\n"), "\(next)")
        #expect(next.contains(#""address":"b""#))
        // `Last-Event-ID` (EventSource's reconnection) says the same for the whole listing.
        let global = index(try registry.client().request("GET", "/services"))
        let again = try registry.client(timeout: 1)
        try again.send("GET /watch HTTP/1.1\r\nHost: x\r\nLast-Event-ID: \(global)\r\n\r\n")
        #expect(!(try readStream(again, until: { $0.contains("\r\n\r\n") })).contains("event: state"))
        #expect(staysQuiet(again, for: 0.5))
        // An index the registry is not at (an older one, or one from before a restart) gets the state at once.
        let behind = try registry.client(timeout: 5)
        try sendGet(behind, "/watch?index=\(global - 1)&prefix=ap&limit=5")
        let state = try readStream(behind, until: { $0.contains("event: state") && $0.contains("\n\n") })
        #expect(state.contains(#""matching_services":1"#), "\(state)")
    }

    @Test func aFilteredStreamFollowsOnlyWhatItsQueryLists() throws {
        try register("api", "a", extra: #","tags":["blue"]"#)
        try register("web", "w")
        let stream = try registry.client(timeout: 5)
        try sendGet(stream, "/watch?tag=blue&limit=10")
        let first = try readStream(stream, until: { $0.contains("total_services") })
        #expect(first.contains(#""api":"#) && !first.contains(#""web":"#))
        try register("db", "d", extra: #","tags":["blue"]"#)
        let next = try readStream(stream, until: { $0.contains(#""db":"#) })
        #expect(next.contains(#""total_services":2,"matching_services":2"#), "\(next)")
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
        // All those clients are closed by now (their objects are gone): the registry notices
        // and drops them; a change must not trip over them, and the server must keep serving.
        try waitForWatchers(polls: 0, streams: 0)
        try register("api", "b")
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
        try waitForWatchers(polls: 1, streams: 1)
        kill(registry.process.processIdentifier, SIGTERM)
        let reply = try watcher.readReply()
        #expect(reply.status == 200)
        #expect(registry.stop(timeout: 3) == 0)
    }

    private func readStream(_ client: TestHTTPClient, until done: (String) -> Bool, seconds: Double = 5) throws -> String {
        var collected = ""
        let deadline = Date().addingTimeInterval(seconds)
        while !done(collected) && Date() < deadline {
            collected += String(decoding: try client.receiveSome(), as: UTF8.self)
        }
        return collected
    }
}
