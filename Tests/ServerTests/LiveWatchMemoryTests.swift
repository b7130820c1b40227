import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What held requests may cost: streams that never read, the caps on watchers.
@Suite struct LiveWatchMemoryTests {
    private func residentBytes(_ registry: RegistryProcess) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(registry.process.processIdentifier)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    private func populate(_ registry: RegistryProcess, service: String, count: Int) throws {
        let http = try registry.client()
        for index in 0..<count {
            let body = #"{"service":"\#(service)","address":"http://10.1.\#(index / 250).\#(index % 250):8080","metadata":{"build":"\#(String(repeating: "x", count: 200))"}}"#
            #expect(try http.request("POST", "/register", body: body).status == 201)
        }
    }

    /// 200 streams of a ~900 KB state whose clients never read, through 20 changes: each
    /// would hold its own copy of every event (3.6 GB); shared and coalesced, they hold at
    /// most a couple of shared copies.
    @Test func streamsThatNeverReadCostLittle() throws {
        let registry = try RegistryProcess()
        try populate(registry, service: "big", count: 2_000)
        let before = residentBytes(registry)
        var streams: [TestHTTPClient] = []
        for _ in 0..<200 {
            let stream = try TestHTTPClient(port: registry.port, timeout: 5, receiveBufferBytes: 4096)
            try stream.send("GET /watch/big HTTP/1.1\r\nHost: x\r\n\r\n")
            streams.append(stream)
        }
        let writer = try registry.client()
        for round in 0..<20 {
            let body = #"{"service":"big","address":"http://10.9.9.\#(round):80"}"#
            #expect(try writer.request("POST", "/register", body: body).status == 201)
            usleep(20_000)
        }
        usleep(300_000)
        let growth = residentBytes(registry) - before
        #expect(growth < 150 << 20, "resident memory grew by \(growth >> 20) MiB")
        #expect(try writer.request("GET", "/health").status == 200)
        // A stream that starts reading gets the latest state next, not every state it missed.
        // (The kernel's socket buffers take a few events before the registry sees a backlog.)
        let reader = streams[0]
        var received = Data()
        let latest = Data("http://10.9.9.19:80".utf8)
        let deadline = Date().addingTimeInterval(20)
        var searched = 0
        while Date() < deadline {
            received.append((try? reader.receiveSome()) ?? Data())
            if received[max(0, searched - 64)...].range(of: latest) != nil { break }
            searched = received.count
        }
        #expect(received.range(of: latest) != nil)
        var events = 0
        var position = received.startIndex
        while let found = received[position...].range(of: Data("event: state".utf8)) {
            events += 1
            position = found.upperBound
        }
        #expect(events >= 2 && events <= 10, "\(events) events reached a reader that lagged through 20 changes")
    }

    @Test func heldRequestsAreCappedInTotal() throws {
        let registry = try RegistryProcess(["--max-watchers", "3"])
        let held = try (0..<3).map { _ in try registry.client(timeout: 3) }
        for client in held { try client.send("GET /discover/api?index=0&wait=30s HTTP/1.1\r\nHost: x\r\n\r\n") }
        usleep(100_000)
        let refused = try registry.client().request("GET", "/watch/api")
        #expect(refused.status == 503)
        #expect(refused.header("Retry-After") == "1")
        #expect((refused.json["message"] as? String)?.contains("--max-watchers") == true)
        // Reads that need not wait are served as always.
        #expect(try registry.client().request("GET", "/discover/api").status == 404)
        let metrics = try registry.client().request("GET", "/metrics").text
        #expect(metrics.contains(#"registry_watchers{kind="long_poll"} 3"#))
    }

    @Test func heldRequestsCanBeCappedPerClient() throws {
        let registry = try RegistryProcess(["--max-watchers-per-client", "2"])
        var held = try (0..<2).map { _ in try registry.client(timeout: 3) }
        for client in held { try client.send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n") }
        usleep(100_000)
        let refused = try registry.client().request("GET", "/discover/api?index=0&wait=5s")
        #expect(refused.status == 429)
        #expect(refused.statusLine == "HTTP/1.1 429 Too Many Requests")
        #expect((refused.json["message"] as? String)?.contains("--max-watchers-per-client") == true)
        // A slot freed is a slot again.
        held.removeFirst()
        usleep(200_000)
        let again = try registry.client(timeout: 3)
        try again.send("GET /discover/api?index=0&wait=200ms HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try again.readReply().status == 404)
    }

    /// Answers made for one client alone (`?limit=` differing per client, `?pick=` streams)
    /// cannot be shared: 60 clients that never read would each hold their own ~500 KB. Past
    /// `--max-output-bytes` the ones stuck longest are closed, and the rest are served.
    @Test func answersForClientsThatNeverReadAreBoundedInTotal() throws {
        let registry = try RegistryProcess(["--max-output-bytes", "4194304"])
        try populate(registry, service: "big", count: 2_000)
        var stuck: [TestHTTPClient] = []
        for index in 0..<60 {
            let client = try TestHTTPClient(port: registry.port, timeout: 5, receiveBufferBytes: 4096)
            let target = index % 2 == 0 ? "/discover/big?limit=\(1900 + index)" : "/watch/big?pick=random"
            try client.send("GET \(target) HTTP/1.1\r\nHost: x\r\n\r\n")
            stuck.append(client)
        }
        // Shedding waits until a connection has been stuck a second; the next answer made
        // past the budget triggers it.
        usleep(1_300_000)
        let http = try registry.client()
        for round in 0..<3 {
            let body = #"{"service":"big","address":"http://10.9.9.\#(round):80"}"#
            #expect(try http.request("POST", "/register", body: body).status == 201)
            usleep(200_000)
        }
        #expect(registry.waitForLog { $0.contains("WARN output_budget_exceeded ") })
        let metrics = try http.request("GET", "/metrics").text
        let shed = metrics.split(separator: "\n").first { $0.hasPrefix("registry_connections_shed_total ") }
        #expect((shed.flatMap { Int($0.split(separator: " ")[1]) } ?? 0) > 0, "\(shed ?? "no shed counter")")
        let held = metrics.split(separator: "\n").first { $0.hasPrefix("registry_output_bytes ") }
        #expect((held.flatMap { Int($0.split(separator: " ")[1]) } ?? .max) <= 4_194_304 + 600_000, "\(held ?? "no gauge")")
        #expect(try http.request("GET", "/health").status == 200)
        withExtendedLifetime(stuck) {}
    }
}
