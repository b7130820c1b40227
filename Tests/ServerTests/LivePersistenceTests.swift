import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The real binary with a real data directory: restarts, damage, a full disk, the lock.
@Suite final class LivePersistenceTests {
    let directory: String

    init() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("registry-live-\(UUID().uuidString)").path
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func start(_ arguments: [String] = [], wrapper: [String] = []) throws -> RegistryProcess {
        try RegistryProcess(["--data-dir", directory, "--log-level", "warn"] + arguments, wrapper: wrapper)
    }

    private func register(_ http: TestHTTPClient, _ service: String, _ address: String, extra: String = "") throws -> Int {
        try http.request("POST", "/register", body: #"{"service":"\#(service)","address":"\#(address)"\#(extra)}"#).status
    }

    /// Every instance of `service` (any status) without the fields that move with time.
    /// `coarse`: `registered_at` to the tenth of a second (see below).
    private func durableView(_ http: TestHTTPClient, _ service: String, coarse: Bool = false) throws -> [NSDictionary] {
        let reply = try http.request("GET", "/discover/\(service)?status=any")
        let instances = reply.json["instances"] as? [[String: Any]] ?? []
        return instances.map { instance in
            var kept = instance
            kept["uptime_seconds"] = nil
            kept["last_heartbeat"] = nil
            // Kept as wall-clock milliseconds and shown through each process's offset between its
            // monotonic and wall clocks, which may differ by microseconds: a millisecond may
            // round the other way after a restart. Compared to the tenth of a second here.
            if coarse, let text = instance["registered_at"] as? String, text.count >= 21 {
                kept["registered_at"] = String(text.prefix(21))
            }
            // Derived from the checks (none in these files).
            kept["health"] = nil
            return kept as NSDictionary
        }.sorted { ($0["id"] as? String ?? "") < ($1["id"] as? String ?? "") }
    }

    private func logFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".log") }.sorted()
    }

    /// A data directory written by the registry before record format 2 (a snapshot and a
    /// log, committed as a fixture) loads with every field, and is appended to in the current format.
    @Test func aDataDirectoryFromTheReleaseBeforeLoads() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PersistenceTests/Fixtures")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: fixtures.appendingPathComponent("data-dir-v1").path) {
            try FileManager.default.copyItem(atPath: fixtures.appendingPathComponent("data-dir-v1/\(name)").path,
                                             toPath: directory + "/" + name)
        }
        let expected = try JSONSerialization.jsonObject(
            with: Data(contentsOf: fixtures.appendingPathComponent("data-dir-v1-expected.json"))) as? [String: [[String: Any]]] ?? [:]
        #expect(expected.count == 3)
        do {
            let registry = try start()
            let http = try registry.client()
            for (service, instances) in expected {
                let wanted = instances.map { $0 as NSDictionary }.sorted { ($0["id"] as? String ?? "") < ($1["id"] as? String ?? "") }
                #expect(try durableView(http, service) == wanted, "\(service)")
            }
            #expect(try register(http, "payments", "http://10.0.9.9:8080") == 201)
            #expect(registry.stop() == 0)
        }
        let again = try start()
        #expect(try durableView(again.client(), "payments").count == 12)
    }

    @Test(arguments: ["always", "everysec", "never"])
    func aRestartKeepsEveryInstanceWithAllItsFields(fsync: String) throws {
        var before: [NSDictionary]
        var indexBefore = 0
        do {
            let registry = try start(["--fsync", fsync])
            let http = try registry.client()
            #expect(registry.log.isEmpty || !registry.log.contains("ERROR"))
            #expect(try register(http, "api", "http://a:1", extra: #","id":"a-1","tags":["v2","canary"],"metadata":{"region":"eu","build":"7"},"weight":7,"zone":"z1","ttl_seconds":120"#) == 201)
            #expect(try register(http, "api", "http://a:2", extra: #","status":"STARTING""#) == 201)
            #expect(try register(http, "api", "http://a:3") == 201)
            #expect(try register(http, "gone", "http://g:1") == 201)
            #expect(try http.request("POST", "/status", body: #"{"service":"api","address":"http://a:3","status":"OUT_OF_SERVICE"}"#).status == 200)
            #expect(try http.request("POST", "/deregister", body: #"{"service":"gone","address":"http://g:1"}"#).status == 200)
            before = try durableView(http, "api", coarse: true)
            #expect(before.count == 3)
            indexBefore = Int(try http.request("GET", "/services").header("X-Registry-Index") ?? "") ?? 0
            #expect(registry.stop() == 0)
        }
        let registry = try start(["--fsync", fsync])
        let http = try registry.client()
        let after = try durableView(http, "api", coarse: true)
        #expect(after == before, "before: \(before)\nafter: \(after)")
        #expect(try http.request("GET", "/discover/gone").status == 404)
        let services = try http.request("GET", "/services")
        #expect((Int(services.header("X-Registry-Index") ?? "") ?? 0) > indexBefore)
        #expect(services.json["total_services"] as? Int == 1)
    }

    @Test func aSecondRegistryIsRefusedTheDirectory() throws {
        let first = try start()
        let (status, output) = try RegistryProcess.runToExit(["--port", "0", "--host", "127.0.0.1", "--data-dir", directory])
        #expect(status == 1)
        #expect(output.contains("is in use by another registry (pid \(first.process.processIdentifier))"), "\(output)")
        #expect(try register(first.client(), "api", "a") == 201)
    }

    @Test func damageIsRefusedAtStartThenRepaired() throws {
        do {
            let registry = try start()
            let http = try registry.client()
            for index in 0..<20 { #expect(try register(http, "api", "http://a:\(index)") == 201) }
            #expect(registry.stop() == 0)
        }
        let name = try #require(logFiles().last)
        let path = directory + "/" + name
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let middle = bytes.count / 2
        bytes[middle] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))

        let (status, output) = try RegistryProcess.runToExit(["--port", "0", "--host", "127.0.0.1", "--data-dir", directory])
        #expect(status == 1)
        #expect(output.contains("\(path) is damaged at byte "), "\(output)")
        #expect(output.contains("--repair"))

        let registry = try start(["--repair"])
        #expect(registry.log.contains("WARN recovery_repaired file=\(path) kept_records=19 skipped_regions=1"), "\(registry.log)")
        #expect(registry.log.contains("WARN recovery_skipped_region file=\(path) offset="))
        // One record is lost, the one the flipped byte is in; every other one is kept.
        let kept = try durableView(registry.client(), "api").count
        #expect(kept == 19)
        #expect(FileManager.default.fileExists(atPath: path + ".damaged"))
        // Repaired once is repaired for good: the next start needs no flag.
        #expect(registry.stop() == 0)
        let again = try start()
        #expect(try durableView(again.client(), "api").count == kept)
    }

    /// Garbage is never a torn tail unless it could be one: a log of it, or a valid log with
    /// megabytes of it after, is refused and left as it is, never emptied.
    @Test(arguments: [0, 5])
    func garbageIsRefusedNotEmptied(validRegistrations: Int) throws {
        do {
            let registry = try start()
            let http = try registry.client()
            for index in 0..<validRegistrations { #expect(try register(http, "api", "http://a:\(index)") == 201) }
            #expect(registry.stop() == 0)
        }
        let path = directory + "/" + (try logFiles().last ?? "log-000000000001.log")
        var bytes = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
        let validLength = bytes.count
        var random = SystemRandomNumberGenerator()
        bytes.append(Data((0..<3_000_000).map { _ in UInt8.random(in: 0...255, using: &random) }))
        try bytes.write(to: URL(fileURLWithPath: path))
        let (status, output) = try RegistryProcess.runToExit(["--port", "0", "--host", "127.0.0.1", "--data-dir", directory])
        #expect(status == 1)
        #expect(output.contains("\(path) is damaged at byte \(validLength) of \(bytes.count)"), "\(output)")
        #expect(output.contains("--repair"))
        // Nothing was cut.
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == bytes.count)
        let registry = try start(["--repair"])
        #expect(try durableView(registry.client(), "api").count == validRegistrations)
    }

    @Test func aTornTailIsCutOffWithAWarning() throws {
        do {
            let registry = try start()
            let http = try registry.client()
            for index in 0..<5 { #expect(try register(http, "api", "http://a:\(index)") == 201) }
            #expect(registry.stop() == 0)
        }
        let path = directory + "/" + (try #require(logFiles().last))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        handle.seekToEndOfFile()
        // The start of a frame that claims 200 bytes, cut short as a crash would leave it.
        handle.write(Data([200, 0, 0, 0, 1, 2, 3, 4, 1, 1]))
        handle.closeFile()
        let registry = try start()
        #expect(registry.log.contains("WARN recovery_torn_tail file=\(path)"))
        // Whether it was acknowledged depends on the last run's policy, which is not known.
        #expect(registry.log.contains("may have been"))
        let copies = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".damaged") }
        #expect(copies.count == 1 && copies[0].contains(".torn-"), "\(copies)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + copies[0])) == Data([200, 0, 0, 0, 1, 2, 3, 4, 1, 1]))
        let http = try registry.client()
        #expect(try durableView(http, "api").count == 5)
        #expect(try register(http, "api", "http://a:5") == 201)
        #expect(registry.stop() == 0)
        let again = try start()
        #expect(!again.log.contains("recovery_torn_tail"))
        #expect(try durableView(again.client(), "api").count == 6)
    }

    @Test func snapshotsReplaceTheLogAndRestartReadsThem() throws {
        var before: [NSDictionary] = []
        do {
            let registry = try start(["--snapshot-min-log-bytes", "2048", "--log-level", "info"])
            let http = try registry.client()
            for round in 0..<300 {
                #expect(try register(http, "api", "http://a:\(round % 40)", extra: #","metadata":{"round":"\#(round)"}"#) / 100 == 2)
            }
            #expect(registry.waitForLog { $0.contains("INFO snapshot_written generation=") })
            before = try durableView(http, "api", coarse: true)
            #expect(registry.stop() == 0)
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(files.contains { $0.hasPrefix("snapshot-") })
        #expect(!files.contains("log-000000000001.log"), "\(files)")
        let registry = try start()
        #expect(try durableView(registry.client(), "api", coarse: true) == before)
    }

    @Test func aWriteThatCannotReachTheDiskIs503AndNotApplied() throws {
        // A file-size limit (soft, so that it can be lifted) makes the log's writes fail
        // with EFBIG once the log reaches it: a real failed write, as a full disk gives.
        let registry = try start(["--fsync", "always"], wrapper: ["/usr/bin/prlimit", "--fsize=3000:unlimited", "--"])
        let http = try registry.client()
        var accepted: [Int] = []
        var refused: [Int] = []
        for index in 0..<80 {
            let reply = try http.request("POST", "/register", body: #"{"service":"api","address":"http://a:\#(index)"}"#)
            switch reply.status {
            case 201:
                accepted.append(index)
            case 503:
                refused.append(index)
                #expect(reply.json["status"] as? String == "error")
                let message = reply.json["message"] as? String ?? ""
                #expect(message.contains("could not be written to the registry's disk"))
                // The data directory's path is for the log, not for clients.
                #expect(!message.contains("/"), "the 503 names a path: \(message)")
            default:
                Issue.record("unexpected status \(reply.status)")
            }
        }
        #expect(!accepted.isEmpty && !refused.isEmpty)
        // The operator's log has the reason with the file's path.
        #expect(registry.waitForLog { $0.contains("persistence_write_failed") && $0.contains(".log") })
        // Reads go on and show only what was written.
        let listed = try durableView(http, "api").compactMap { $0["address"] as? String }
        #expect(Set(listed) == Set(accepted.map { "http://a:\($0)" }))
        // A heartbeat writes nothing and keeps working.
        #expect(try http.request("POST", "/heartbeat", body: #"{"service":"api","address":"http://a:0"}"#).status == 200)
        // Removal records are smaller than registrations: some may still fit. The first one
        // that does not is refused, and its instance stays.
        var removed: [Int] = []
        var kept: Int?
        for index in accepted {
            let status = try http.request("POST", "/deregister", body: #"{"service":"api","address":"http://a:\#(index)"}"#).status
            if status == 503 {
                kept = index
                break
            }
            #expect(status == 200)
            removed.append(index)
        }
        let refusedRemoval = try #require(kept)
        let remaining = try durableView(http, "api").compactMap { $0["address"] as? String }
        #expect(remaining.contains("http://a:\(refusedRemoval)"))
        #expect(Set(remaining) == Set(accepted.filter { !removed.contains($0) }.map { "http://a:\($0)" }))

        // The disk "recovers": writes resume by themselves.
        let lift = Process()
        lift.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        lift.arguments = ["--pid", String(registry.process.processIdentifier), "--fsize=unlimited:unlimited"]
        try lift.run()
        lift.waitUntilExit()
        #expect(try register(http, "api", "http://late") == 201)
        #expect(registry.stop() == 0)

        let restarted = try start()
        let restored = try durableView(restarted.client(), "api").compactMap { $0["address"] as? String }
        #expect(Set(restored) == Set(accepted.filter { !removed.contains($0) }.map { "http://a:\($0)" } + ["http://late"]))
    }
}
