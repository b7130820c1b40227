import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Quotas on a live registry: `--max-instances`, `--max-services`, an ACL entry's
/// `max_instances`, `max_services` and `requests_per_second`, and
/// `--max-request-rate-per-client`; each reached, and the registry still serving the others.
@Suite(.serialized) struct LiveQuotaTests {
    static let ops = "ops-token-0123456789abcdef"
    static let payments = "payments-token-0123456789"
    static let orders = "orders-token-0123456789ab"

    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("quota-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func acl(_ text: String) throws -> String {
        let url = directory.appendingPathComponent("acl-\(UUID().uuidString).json")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func call(_ registry: RegistryProcess, _ method: String, _ path: String, body: String? = nil, token: String? = nil) throws -> TestHTTPClient.Reply {
        try registry.client().request(method, path, body: body, headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:])
    }

    func register(_ registry: RegistryProcess, _ service: String, _ address: String, token: String? = nil) throws -> TestHTTPClient.Reply {
        try call(registry, "POST", "/register", body: #"{"service":"\#(service)","address":"\#(address)"}"#, token: token)
    }

    @Test func theRegistryWideLimitsRefuseWhatWouldPassThemAndNothingElse() throws {
        let registry = try RegistryProcess(["--max-instances", "4", "--max-services", "2"])
        #expect(try register(registry, "a", "http://a:1").status == 201)
        #expect(try register(registry, "b", "http://b:1").status == 201)
        var reply = try register(registry, "c", "http://c:1")
        #expect(reply.status == 429)
        #expect(reply.json["message"] as? String == "the registry holds 2 services, its limit (--max-services), and c would be a new one; "
            + "nothing was changed. Deregister services that are gone, or raise the limit")
        #expect(try register(registry, "a", "http://a:2").status == 201)
        #expect(try register(registry, "a", "http://a:3").status == 201)
        reply = try register(registry, "a", "http://a:4")
        #expect(reply.status == 429)
        #expect((reply.json["message"] as? String)?.contains("--max-instances") == true)
        // Heartbeats and re-registrations of what is held go on; reads too.
        #expect(try register(registry, "a", "http://a:1").status == 200)
        #expect(try call(registry, "POST", "/heartbeat", body: #"{"service":"b","address":"http://b:1"}"#).status == 200)
        #expect(try call(registry, "GET", "/discover/a").status == 200)
        #expect(try call(registry, "GET", "/discover/c").status == 404, "the refused registration changed nothing")
        #expect(try call(registry, "POST", "/deregister", body: #"{"service":"b","address":"http://b:1"}"#).status == 200)
        #expect(try register(registry, "c", "http://c:1").status == 201, "room again")
        let metrics = try call(registry, "GET", "/metrics").text
        #expect(metrics.contains("registry_max_instances 4"))
        #expect(metrics.contains(#"registry_quota_refusals_total{limit="instances"} 1"#))
        #expect(metrics.contains(#"registry_quota_refusals_total{limit="services"} 1"#))
    }

    @Test func aTokensNamespaceHoldsAtMostItsQuotaAcrossDeregistrationsAndRestarts() throws {
        let file = try acl("""
            {"tokens": [
               {"name": "ops", "token": "\(Self.ops)", "operator": true},
               {"name": "payments", "token": "\(Self.payments)", "write": ["payment-*"], "read": ["*"], "max_instances": 3, "max_services": 2},
               {"name": "orders", "token": "\(Self.orders)", "write": ["order-*"], "read": ["*"]}],
             "anonymous": {"read": ["*"]}}
            """)
        let data = directory.appendingPathComponent("data").path
        var registry: RegistryProcess? = try RegistryProcess(["--acl-file", file, "--data-dir", data])
        #expect(try register(registry!, "payment-api", "http://p:1", token: Self.payments).status == 201)
        #expect(try register(registry!, "payment-api", "http://p:2", token: Self.payments).status == 201)
        #expect(try register(registry!, "payment-web", "http://w:1", token: Self.payments).status == 201)
        var reply = try register(registry!, "payment-db", "http://d:1", token: Self.payments)
        #expect(reply.status == 429)
        #expect(reply.json["message"] as? String == #"the services the token "payments" may write hold 3 instances, its limit "#
            + "(max_instances 3 in the ACL file); nothing was changed. Deregister instances that are gone")
        #expect(try register(registry!, "payment-api", "http://p:1", token: Self.payments).status == 200, "at the limit, a re-registration")
        // Another token is not held back by it.
        #expect(try register(registry!, "order-api", "http://o:1", token: Self.orders).status == 201)
        // Room for one more instance, but not in a third service.
        #expect(try call(registry!, "POST", "/deregister", body: #"{"service":"payment-api","address":"http://p:2"}"#, token: Self.payments).status == 200)
        reply = try register(registry!, "payment-db", "http://d:1", token: Self.payments)
        #expect(reply.status == 429, "two services already")
        #expect((reply.json["message"] as? String)?.contains("max_services") == true)
        #expect(try register(registry!, "payment-api", "http://p:3", token: Self.payments).status == 201)
        var metrics = try call(registry!, "GET", "/metrics", token: Self.ops).text
        #expect(metrics.contains(#"registry_quota_instances{token="payments"} 3"#))
        #expect(metrics.contains(#"registry_quota_services{token="payments"} 2"#))
        #expect(metrics.contains(#"registry_quota_refusals_total{limit="token_instances"} 1"#))
        #expect(metrics.contains(#"registry_quota_refusals_total{limit="token_services"} 1"#))
        // Counted from what the registry holds: the same after a restart.
        #expect(registry!.stop() == 0)
        registry = nil
        registry = try RegistryProcess(["--acl-file", file, "--data-dir", data])
        metrics = try call(registry!, "GET", "/metrics", token: Self.ops).text
        #expect(metrics.contains(#"registry_quota_instances{token="payments"} 3"#))
        #expect(try register(registry!, "payment-api", "http://p:4", token: Self.payments).status == 429)
        // Expiry frees room as deregistration does.
        #expect(try call(registry!, "POST", "/deregister", body: #"{"service":"payment-api","address":"http://p:3"}"#, token: Self.payments).status == 200)
        #expect(try call(registry!, "POST", "/register", body: #"{"service":"payment-api","address":"http://p:4","ttl_seconds":1}"#,
                         token: Self.payments).status == 201)
        #expect(try register(registry!, "payment-api", "http://p:5", token: Self.payments).status == 429)
        usleep(1_600_000)
        #expect(try call(registry!, "GET", "/discover/payment-api").status == 200)
        #expect(try register(registry!, "payment-api", "http://p:5", token: Self.payments).status == 201, "the expired one's place")
    }

    @Test func requestRatesPerTokenAndPerClientAnswer429WithRetryAfterAndSpareTheOthers() throws {
        let file = try acl("""
            {"tokens": [
               {"name": "ops", "token": "\(Self.ops)", "operator": true},
               {"name": "payments", "token": "\(Self.payments)", "read": ["*"], "write": ["payment-*"], "requests_per_second": 2, "burst": 5}],
             "anonymous": {"read": ["*"]}}
            """)
        let registry = try RegistryProcess(["--acl-file", file])
        var statuses: [Int] = []
        for _ in 0..<8 { statuses.append(try call(registry, "GET", "/services", token: Self.payments).status) }
        #expect(statuses.prefix(5).allSatisfy { $0 == 200 }, Comment(rawValue: "\(statuses)"))
        #expect(statuses.suffix(2).allSatisfy { $0 == 429 }, Comment(rawValue: "\(statuses)"))
        let refused = try call(registry, "GET", "/services", token: Self.payments)
        #expect(refused.status == 429)
        #expect(refused.header("Retry-After") == "1")
        #expect((refused.json["message"] as? String)?.hasPrefix(#"the token "payments" may send 2 requests a second (requests_per_second in the ACL file)"#) == true)
        // Others are served meanwhile: another token, anonymous requests, probes.
        #expect(try call(registry, "GET", "/metrics", token: Self.ops).status == 200)
        #expect(try call(registry, "GET", "/services").status == 200)
        #expect(try call(registry, "GET", "/health", token: Self.payments).status == 200, "probes are never limited")
        // The bucket refills.
        usleep(600_000)
        #expect(try call(registry, "GET", "/services", token: Self.payments).status == 200)

        // Per client address, for every caller from it; probes and a replica's heartbeat relay are exempt.
        let limited = try RegistryProcess(["--max-request-rate-per-client", "3"])
        statuses = []
        for _ in 0..<5 { statuses.append(try call(limited, "GET", "/services").status) }
        #expect(statuses == [200, 200, 200, 429, 429])
        let reply = try call(limited, "POST", "/register", body: #"{"service":"a","address":"http://a:1"}"#)
        #expect(reply.status == 429)
        #expect((reply.json["message"] as? String)?.contains("this client (127.0.0.1) may send 3 requests a second (--max-request-rate-per-client)") == true)
        #expect(try call(limited, "GET", "/health").status == 200)
        #expect(try call(limited, "POST", "/cluster/heartbeats", body: "{}").status != 429)
        #expect(try call(limited, "GET", "/metrics").status == 429)
        usleep(1_100_000)
        let metrics = try call(limited, "GET", "/metrics").text
        #expect(metrics.contains(#"registry_quota_refusals_total{limit="client_rate"} 4"#), Comment(rawValue: metrics))
        #expect(metrics.contains("registry_max_request_rate_per_client 3"))
    }
}
