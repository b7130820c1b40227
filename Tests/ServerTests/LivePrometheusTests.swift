import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Prometheus HTTP service discovery (`GET /v1/prometheus/targets`), against Debian's real
/// Prometheus (installed by scripts/install-test-tools.sh), started here on a loopback port
/// with a generated configuration.
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus"),
                             "prometheus is not installed: run scripts/install-test-tools.sh"))
struct LivePrometheusTests {
    /// Whether this Prometheus was built with Consul discovery: Debian's 2.42 was not ("Disable
    /// Consul SD until its Debian package is back in shape"), and its promtool refuses the section.
    static let hasConsulDiscovery: Bool = {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("consul-sd-\(UUID().uuidString).yml")
        defer { try? FileManager.default.removeItem(at: config) }
        guard (try? "scrape_configs:\n  - job_name: c\n    consul_sd_configs:\n      - server: 127.0.0.1:1\n"
            .write(to: config, atomically: true, encoding: .utf8)) != nil else { return false }
        let promtool = Process()
        promtool.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        promtool.arguments = ["check", "config", config.path]
        promtool.standardOutput = Pipe()
        promtool.standardError = Pipe()
        guard (try? promtool.run()) != nil else { return false }
        promtool.waitUntilExit()
        return promtool.terminationStatus == 0
    }()

    @Test func theAnswerParsesAsHTTPSDAndFiltersByServiceTagAndPermission() throws {
        let registry = try RegistryProcess()
        let http = try registry.client()
        for body in [#"{"service":"api","address":"http://10.0.0.1:8080","tags":["v2","canary-1"],"metadata":{"team.name":"pay"},"zone":"eu-1"}"#,
                     #"{"service":"api","address":"https://api.example"}"#, #"{"service":"db","address":"10.0.0.9:5432","status":"DOWN"}"#,
                     #"{"service":"web","address":"[::1]:81"}"#, #"{"service":"odd","address":"not-a-url"}"#] {
            #expect(try http.request("POST", "/register", body: body).status == 201)
        }
        let reply = try http.request("GET", "/v1/prometheus/targets")
        #expect(reply.header("Content-Type") == "application/json")
        let groups = try #require(try JSONSerialization.jsonObject(with: reply.body) as? [[String: Any]])
        let targets = groups.compactMap { ($0["targets"] as? [String])?.first }
        #expect(targets == ["10.0.0.1:8080", "api.example:443", "[::1]:81"], "UP instances with a host and port; the scheme's port")
        let labels = try #require(groups.first?["labels"] as? [String: String])
        #expect(labels["__meta_registry_service"] == "api")
        #expect(labels["__meta_registry_zone"] == "eu-1")
        #expect(labels["__meta_registry_scheme"] == "http")
        #expect(labels["__meta_registry_tag_canary_1"] == "true")
        #expect(labels["__meta_registry_metadata_team_name"] == "pay")
        #expect(labels["__meta_registry_tags"] == ",v2,canary-1,")
        for group in groups {
            for name in (group["labels"] as? [String: String] ?? [:]).keys {
                #expect(name.range(of: "^[a-zA-Z_][a-zA-Z0-9_]*$", options: .regularExpression) != nil, Comment(rawValue: name))
            }
        }
        let filtered = try JSONSerialization.jsonObject(with: http.request("GET", "/v1/prometheus/targets?service=api&service=web&tag=v2").body) as? [[String: Any]]
        #expect(filtered?.count == 1)
        #expect(try http.request("GET", "/v1/prometheus/targets?services=api").status == 400)
        #expect(try http.request("GET", "/v1/prometheus/targets?tag=").status == 400)
        #expect(try http.request("GET", "/v1/prometheus/targets?service=a%2Fb").status == 400)
    }

    @Test func prometheusDiscoversTheInstancesWithTheirLabelsAndDropsADeregisteredOne() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("prometheus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // With an ACL file: discovery reads with a token, as Prometheus sends it (`authorization`).
        let token = "prometheus-token-0123456789"
        let acl = directory.appendingPathComponent("acl.json")
        try #"{"tokens": [{"name": "prometheus", "token": "\#(token)", "read": ["*"]}, {"name": "ops", "token": "ops-token-0123456789", "operator": true}]}"#
            .write(to: acl, atomically: true, encoding: .utf8)
        let registry = try RegistryProcess(["--acl-file", acl.path])
        let http = try registry.client()
        let ops = ["Authorization": "Bearer ops-token-0123456789"]
        #expect(try http.request("POST", "/register", body: #"{"service":"api","address":"http://127.0.0.1:9","tags":["v2"]}"#, headers: ops).status == 201)
        #expect(try http.request("POST", "/register", body: #"{"service":"api","address":"http://127.0.0.1:10"}"#, headers: ops).status == 201)
        #expect(try http.request("GET", "/v1/prometheus/targets").status == 401, "the token is needed")
        let prometheus = try Prometheus(directory: directory, scrapeConfig: """
              - job_name: registry
                http_sd_configs:
                  - url: http://127.0.0.1:\(registry.port)/v1/prometheus/targets
                    refresh_interval: 1s
                    authorization:
                      type: Bearer
                      credentials: \(token)
                relabel_configs:
                  - source_labels: [__meta_registry_service]
                    target_label: service
            """)
        var targets = prometheus.waitFor(20) { $0.count == 2 }
        #expect(targets.count == 2, Comment(rawValue: prometheus.log()))
        let first = targets.first { ($0["discoveredLabels"] as? [String: String])?["__address__"] == "127.0.0.1:9" }
        let discovered = first?["discoveredLabels"] as? [String: String] ?? [:]
        #expect(discovered["__meta_registry_tag_v2"] == "true")
        #expect(discovered["__meta_registry_scheme"] == "http")
        #expect((first?["labels"] as? [String: String])?["service"] == "api", "relabelled from __meta_registry_service")
        // Deregistered: gone from Prometheus within the refresh interval and a few seconds.
        #expect(try http.request("POST", "/deregister", body: #"{"service":"api","address":"http://127.0.0.1:9"}"#, headers: ops).status == 200)
        let removed = Date()
        targets = prometheus.waitFor(10) { $0.count == 1 }
        #expect(targets.count == 1)
        #expect(Date().timeIntervalSince(removed) < 6)
    }

    /// `consul_sd_configs` against the registry's Consul API, where Prometheus has it.
    @Test(.enabled(if: LivePrometheusTests.hasConsulDiscovery,
                   "this Prometheus is built without Consul discovery (Debian's 2.42 is); LiveConsulTests replays its requests"))
    func prometheusDiscoversTheInstancesThroughConsulDiscovery() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("prometheus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let registry = try RegistryProcess(["--checks", "off"])
        let http = try registry.client()
        #expect(try http.request("POST", "/register", body: #"{"service":"api","address":"http://127.0.0.1:9","id":"api-9","tags":["v2"]}"#).status == 201)
        #expect(try http.request("PUT", "/v1/agent/service/register", body: #"{"Name":"api","ID":"api-10","Address":"127.0.0.1","Port":10}"#).status == 200)
        let prometheus = try Prometheus(directory: directory, scrapeConfig: """
              - job_name: registry
                consul_sd_configs:
                  - server: 127.0.0.1:\(registry.port)
                    refresh_interval: 1s
                relabel_configs:
                  - source_labels: [__meta_consul_service]
                    target_label: service
            """)
        var targets = prometheus.waitFor(30) { $0.count == 2 }
        #expect(targets.count == 2, Comment(rawValue: prometheus.log()))
        let first = targets.first { ($0["discoveredLabels"] as? [String: String])?["__address__"] == "127.0.0.1:9" }
        let discovered = first?["discoveredLabels"] as? [String: String] ?? [:]
        #expect(discovered["__meta_consul_service_id"] == "api-9")
        #expect(discovered["__meta_consul_tags"] == ",v2,")
        #expect(discovered["__meta_consul_dc"] == "dc1")
        #expect((first?["labels"] as? [String: String])?["service"] == "api")
        #expect(try http.request("PUT", "/v1/agent/service/deregister/api-10").status == 200)
        let removed = Date()
        targets = prometheus.waitFor(10) { $0.count == 1 }
        #expect(targets.count == 1)
        #expect(Date().timeIntervalSince(removed) < 6)
    }
}

/// Debian's Prometheus on a loopback port with a generated configuration, stopped with it.
final class Prometheus {
    let port: UInt16
    private let process = Process()
    private let logURL: URL

    init(directory: URL, scrapeConfig: String) throws {
        port = try EtcdCluster.freePort()
        let config = directory.appendingPathComponent("prometheus.yml")
        try "global:\n  scrape_interval: 1h\nscrape_configs:\n\(scrapeConfig)\n".write(to: config, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        process.arguments = ["--config.file", config.path, "--storage.tsdb.path", directory.appendingPathComponent("data").path,
                             "--web.listen-address", "127.0.0.1:\(port)", "--log.level", "warn"]
        logURL = directory.appendingPathComponent("prometheus.log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: logURL)
        process.standardError = process.standardOutput
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    func log() -> String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    func activeTargets() -> [[String: Any]] {
        guard let text = try? EtcdCluster.get(port: port, path: "/api/v1/targets?state=active"),
              let split = text.range(of: "\r\n\r\n"),
              case let body = Self.dechunked(String(text[split.upperBound...]), head: String(text[..<split.lowerBound])),
              let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
              let data = json["data"] as? [String: Any] else { return [] }
        return data["activeTargets"] as? [[String: Any]] ?? []
    }

    /// A body sent with `Transfer-Encoding: chunked` (Go's server does so for a larger one), joined.
    static func dechunked(_ body: String, head: String) -> String {
        guard head.lowercased().contains("transfer-encoding: chunked") else { return body }
        var rest = Substring(body)
        var joined = ""
        while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
            let start = lineEnd.upperBound
            guard let end = rest.utf8.index(start, offsetBy: size, limitedBy: rest.utf8.endIndex) else { break }
            joined += rest[start..<end]
            rest = rest[end...].dropFirst(2)
        }
        return joined
    }

    func waitFor(_ seconds: Double, _ condition: ([[String: Any]]) -> Bool) -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(seconds)
        var targets = activeTargets()
        while !condition(targets), Date() < deadline {
            usleep(200_000)
            targets = activeTargets()
        }
        return targets
    }
}
