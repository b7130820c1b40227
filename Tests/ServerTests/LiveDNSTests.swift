import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// DNS against the real binary (`--dns-port`), asked by `dig` (Debian's dnsutils) and by
/// dnspython (Tests/DNSClients/dns_checks.py, in its virtualenv), both installed by
/// scripts/install-test-tools.sh.
@Suite(.serialized) struct LiveDNSTests {
    static let dnsPython = LiveConsulTests.root.appendingPathComponent(".build/dns-clients/bin/python")

    private func startRegistry(_ extra: [String] = []) throws -> (RegistryProcess, UInt16) {
        let registry = try RegistryProcess(["--checks", "off", "--dns-port", "0", "--heartbeat-timeout", "600"] + extra)
        guard let range = registry.log.range(of: "DNS on port "), let port = UInt16(registry.log[range.upperBound...].prefix { $0.isNumber }) else {
            throw RegistryProcess.StartFailure(description: "no DNS port in the banner:\n\(registry.log)")
        }
        let http = try registry.client()
        for body in [#"{"service":"web","address":"http://10.0.0.1:8080","tags":["v1"],"zone":"eu-1"}"#,
                     #"{"service":"web","address":"http://10.0.0.2:8080","weight":5}"#,
                     #"{"service":"web","address":"https://[fd00::3]","tags":["V1"]}"#,
                     #"{"service":"web","address":"http://web4.example:9000"}"#,
                     #"{"service":"web","address":"http://10.0.0.9:1","status":"DOWN"}"#,
                     #"{"service":"idle","address":"http://10.0.0.7:1","status":"OUT_OF_SERVICE"}"#] {
            #expect(try http.request("POST", "/register", body: body).status == 201)
        }
        for number in 1...100 {
            #expect(try http.request("POST", "/register", body: #"{"service":"big","address":"http://10.1.0.\#(number):80"}"#).status == 201)
        }
        return (registry, port)
    }

    private func dig(_ port: UInt16, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/dig")
        process.arguments = ["@127.0.0.1", "-p", String(port), "+time=2", "+tries=1"] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/dig"), "dig is missing: run scripts/install-test-tools.sh"))
    func digAsksEveryKindOfName() throws {
        let (registry, port) = try startRegistry()
        defer { _ = registry }
        let a = try dig(port, ["web.service.registry", "A", "+short"])
        #expect(Set(a.split(separator: "\n")) == ["10.0.0.1", "10.0.0.2"], Comment(rawValue: a))
        let again = try dig(port, ["web.service.registry", "A", "+short"])
        #expect(again != a, "no rotation between two queries: \(a) \(again)")
        #expect(try dig(port, ["web.service.registry", "AAAA", "+short"]) == "fd00::3\n")
        let srv = try dig(port, ["_web._tcp.service.registry", "SRV", "+short"])
        #expect(srv.contains("1 5 8080 0a000002.addr.registry.") && srv.contains("1 100 9000 web4.example."), Comment(rawValue: srv))
        #expect(try dig(port, ["v1.web.service.registry", "A", "+short"]) == "10.0.0.1\n")
        #expect(try dig(port, ["nothing.service.registry", "A"]).contains("status: NXDOMAIN"))
        let idle = try dig(port, ["idle.service.registry", "A"])
        #expect(idle.contains("status: NOERROR") && idle.contains("ANSWER: 0"), Comment(rawValue: idle))
        #expect(try dig(port, ["example.com", "A"]).contains("status: REFUSED"))
        let truncated = try dig(port, ["big.service.registry", "A", "+noedns", "+ignore"])
        #expect(truncated.contains(" tc "), Comment(rawValue: truncated))
        let retried = try dig(port, ["big.service.registry", "A"])
        #expect(retried.contains("Truncated, retrying in TCP mode") && retried.contains("ANSWER: 100"), Comment(rawValue: retried))
        #expect(try dig(port, ["big.service.registry", "A", "+tcp"]).contains("ANSWER: 100"))
        // Answers are kept between queries, never past a change.
        let http = try registry.client()
        #expect(try http.request("POST", "/register", body: #"{"service":"web","address":"http://10.0.0.8:8080"}"#).status == 201)
        #expect(Set(try dig(port, ["web.service.registry", "A", "+short"]).split(separator: "\n")) == ["10.0.0.1", "10.0.0.2", "10.0.0.8"])
        #expect(try http.request("POST", "/status", body: #"{"service":"web","address":"http://10.0.0.1:8080","status":"DOWN"}"#).status == 200)
        #expect(Set(try dig(port, ["web.service.registry", "A", "+short"]).split(separator: "\n")) == ["10.0.0.2", "10.0.0.8"])
        #expect(try http.request("POST", "/deregister", body: #"{"service":"idle","address":"http://10.0.0.7:1"}"#).status == 200)
        #expect(try dig(port, ["idle.service.registry", "A"]).contains("status: NXDOMAIN"))
        // The question comes back as it was asked (resolvers that mix case check it).
        #expect(try dig(port, ["WeB.service.registry", "A", "+noall", "+answer"]).contains("WeB.service.registry."))
    }

    @Test func dnspythonChecksTheAnswersAndMalformedPacketsDoNoHarm() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.dnsPython.path),
                     "\(Self.dnsPython.path) is missing: run scripts/install-test-tools.sh (make test does)")
        let (registry, port) = try startRegistry()
        let (status, text) = try PythonScript.run(Self.dnsPython, "Tests/DNSClients/dns_checks.py", [String(port)])
        #expect(status == 0, "\(text)\nregistry log:\n\(registry.log.suffix(2000))")
        #expect(text.hasSuffix("done\n"), Comment(rawValue: text))
        print(text)
        let metrics = String(decoding: try registry.client().request("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("registry_dns_responses_total{rcode=\"FORMERR\"}"))
        #expect(!metrics.contains("registry_dns_truncated_total 0"))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/dig"), "dig is missing: run scripts/install-test-tools.sh"))
    func withAnACLFileDNSListsWhatAnonymousCallersMayRead() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dns-acl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let acl = directory.appendingPathComponent("acl.json")
        try #"{"tokens": [{"name": "ops", "token": "ops-token-0123456789", "operator": true}], "anonymous": {"read": ["web"]}}"#
            .write(to: acl, atomically: true, encoding: .utf8)
        let registry = try RegistryProcess(["--checks", "off", "--dns-port", "0", "--acl-file", acl.path])
        let range = try #require(registry.log.range(of: "DNS on port "))
        let port = try #require(UInt16(registry.log[range.upperBound...].prefix { $0.isNumber }))
        let ops = ["Authorization": "Bearer ops-token-0123456789"]
        for body in [#"{"service":"web","address":"http://10.0.0.1:80"}"#, #"{"service":"payments","address":"http://10.0.0.2:80"}"#] {
            #expect(try registry.client().request("POST", "/register", body: body, headers: ops).status == 201)
        }
        #expect(try dig(port, ["web.service.registry", "A", "+short"]) == "10.0.0.1\n")
        #expect(try dig(port, ["payments.service.registry", "A"]).contains("status: NXDOMAIN"), "a service anonymous callers may not read")
        #expect(try dig(port, ["_payments._tcp.service.registry", "SRV"]).contains("status: NXDOMAIN"))
    }

    @Test func aClusterReplicaAnswersFromItsMirror() throws {
        let etcd = try EtcdCluster(size: 1)
        let first = try RegistryProcess(["--etcd", etcd.endpoints, "--dns-port", "0", "--checks", "off"])
        let second = try RegistryProcess(["--etcd", etcd.endpoints, "--dns-port", "0", "--checks", "off"])
        #expect(try first.client().request("POST", "/register", body: #"{"service":"api","address":"http://10.9.0.1:80"}"#).status == 201)
        let range = try #require(second.log.range(of: "DNS on port "))
        let port = try #require(UInt16(second.log[range.upperBound...].prefix { $0.isNumber }))
        let deadline = Date().addingTimeInterval(5)
        var answer = ""
        while Date() < deadline {
            answer = (try? dig(port, ["api.service.registry", "A", "+short"])) ?? ""
            if answer == "10.9.0.1\n" { break }
            usleep(100_000)
        }
        #expect(answer == "10.9.0.1\n", "the other replica does not answer from its mirror: \(answer)")
    }
}
