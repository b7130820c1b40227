import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Consul's HTTP API against the real binary: the teaching project's calls made by real
/// Consul client libraries (python-consul 1.1.0 and py-consul, each in its own virtualenv
/// from scripts/install-test-tools.sh), and the answers' details that clients depend on.
@Suite(.serialized) struct LiveConsulTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func python(_ client: String) -> URL {
        root.appendingPathComponent(".build/consul-clients/\(client)/bin/python")
    }

    /// Runs Tests/ConsulClients/scenario.py with `client`'s Python against `port`, with the
    /// example service as the checks' target; returns its output.
    private func runScenario(_ client: String, registry: RegistryProcess, port: UInt16) throws -> String {
        let python = Self.python(client)
        try #require(FileManager.default.isExecutableFile(atPath: python.path),
                     "\(python.path) is missing: run scripts/install-test-tools.sh (make test does)")
        let targetPort = try ExampleServiceTests.freePort()
        let (target, _) = try ExampleServiceTests.launch(["target", String(targetPort)], registryPort: registry.port, heartbeatInterval: "60")
        defer { if target.isRunning { kill(target.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(5)
        while (try? TestHTTPClient(port: targetPort).request("GET", "/health").status) != 200, Date() < deadline { usleep(50_000) }

        let (status, text) = try PythonScript.run(python, "Tests/ConsulClients/scenario.py",
                                                  [String(port), String(targetPort), String(target.processIdentifier)])
        #expect(status == 0, "\(client) scenario failed:\n\(text)\nregistry log:\n\(registry.log.suffix(3000))")
        #expect(text.hasSuffix("done\n"), Comment(rawValue: text))
        print(text)
        return text
    }

    @Test func pythonConsulOneOneZeroMakesTheTeachingProjectsCalls() throws {
        // python-consul 1.1.0 sends the token as ?token= and a single lower-case "check".
        let registry = try RegistryProcess(["--check-allow", "127.0.0.0/8"])
        let text = try runScenario("python-consul", registry: registry, port: registry.port)
        #expect(text.contains("client: consul 1.1.0"))
    }

    @Test func pyConsulMakesThemOnTheConsulPort() throws {
        // py-consul sends "checks" (a list), "meta", and X-Consul-Token; here on --consul-port.
        let registry = try RegistryProcess(["--check-allow", "127.0.0.0/8", "--consul-port", "0"])
        let port = try #require(registry.consulPort, "no Consul port in the banner:\n\(registry.log)")
        #expect(port != registry.port)
        let text = try runScenario("py-consul", registry: registry, port: port)
        #expect(text.contains("client: consul 1.8.0"))
    }

    private func consulHeaders(_ reply: TestHTTPClient.Reply) {
        let index = UInt64(reply.header("X-Consul-Index") ?? "") ?? 0
        #expect(index > 0, "X-Consul-Index missing or 0 on \(reply.status)")
        #expect(reply.header("X-Consul-KnownLeader") == "true")
        #expect(reply.header("X-Consul-LastContact").flatMap { UInt64($0) } != nil)
    }

    @Test func bothAPIsSeeOneSetOfInstances() throws {
        let registry = try RegistryProcess(["--checks", "off"])
        let http = try registry.client()
        for body in [#"{"service":"api","address":"https://api.example/v1","id":"api-1","tags":["blue"],"metadata":{"team":"pay"}}"#,
                     #"{"service":"api","address":"not-a-url","id":"api-2"}"#, #"{"service":"db","address":"10.0.0.9:5432","id":"api-1"}"#] {
            #expect(try http.request("POST", "/register", body: body).status == 201)
        }
        // Native instances in Consul's view: the URL's host and the scheme's port; the whole
        // string and port 0 for an address that is not a URL.
        var reply = try http.request("GET", "/v1/catalog/service/api")
        consulHeaders(reply)
        let catalog = try #require(try JSONSerialization.jsonObject(with: reply.body) as? [[String: Any]])
        #expect(catalog.map { $0["ServiceAddress"] as? String } == ["api.example", "not-a-url"])
        #expect(catalog.map { $0["ServicePort"] as? Int } == [443, 0])
        #expect((catalog.first?["ServiceMeta"] as? [String: String]) == ["team": "pay"])
        // api-1 is an id of two services: ambiguous, answered as Consul answers an unknown one.
        reply = try http.request("PUT", "/v1/agent/service/deregister/api-1")
        #expect(reply.status == 404)
        #expect(String(decoding: reply.body, as: UTF8.self).hasPrefix("Unknown service ID \"api-1\""))
        consulHeaders(reply)
        #expect(try http.request("PUT", "/v1/agent/service/deregister/api-2").status == 200)
        #expect(try http.request("GET", "/discover/api").json["count"] as? Int == 1)

        // Registered through Consul: http://Address:Port natively (the scheme from the
        // "scheme" metadata key), the client's own address without Address, and Address
        // alone without a port.
        #expect(try http.request("PUT", "/v1/agent/service/register",
                                 body: #"{"Name":"web","ID":"web-1","Address":"10.1.2.3","Port":8443,"Meta":{"scheme":"https"},"Weights":{"Passing":7}}"#).status == 200)
        #expect(try http.request("PUT", "/v1/agent/service/register", body: #"{"name":"web","id":"web-2","port":9000}"#).status == 200)
        #expect(try http.request("PUT", "/v1/agent/service/register", body: #"{"NAME":"web","ID":"web-3","Address":"::1","Port":1}"#).status == 200)
        #expect(try http.request("PUT", "/v1/agent/service/register", body: #"{"Name":"web","ID":"web-4","Address":"box"}"#).status == 200)
        let native = try #require(try http.request("GET", "/discover/web").json["instances"] as? [[String: Any]])
        #expect(native.map { $0["address"] as? String } == ["https://10.1.2.3:8443", "http://127.0.0.1:9000", "http://[::1]:1", "box"])
        #expect(native.first?["weight"] as? Int == 7)
        #expect(native.first?["ttl_seconds"] is NSNull, "a Consul registration has no heartbeat timeout")
        let services = try #require(try JSONSerialization.jsonObject(with: http.request("GET", "/v1/agent/services").body) as? [String: [String: Any]])
        #expect(services["web-4"]?["Address"] as? String == "box" && services["web-4"]?["Port"] as? Int == 0)
        #expect(services["web-3"]?["Address"] as? String == "::1" && services["web-3"]?["Port"] as? Int == 1)
        #expect(services["api/api-1"] != nil && services["db/api-1"] != nil, "an ambiguous id is listed under service/id: \(services.keys.sorted())")
        // An id registered again under another name moves there, as Consul's agent does.
        #expect(try http.request("PUT", "/v1/agent/service/register", body: #"{"Name":"www","ID":"web-4","Address":"box"}"#).status == 200)
        #expect(try http.request("GET", "/discover/web").json["count"] as? Int == 3)
        #expect(try http.request("GET", "/discover/www").json["count"] as? Int == 1)
        let listing = try #require(try JSONSerialization.jsonObject(with: http.request("GET", "/v1/catalog/services").body) as? [String: [String]])
        #expect(listing == ["api": ["blue"], "db": [], "web": [], "www": []])

        // Maintenance is the native OUT_OF_SERVICE, and a critical check in Consul's view.
        #expect(try http.request("PUT", "/v1/agent/service/maintenance/web-1?enable=true&reason=disk").status == 200)
        #expect(try http.request("GET", "/discover/web?status=OUT_OF_SERVICE").json["count"] as? Int == 1)
        let checks = try #require(try JSONSerialization.jsonObject(with: http.request("GET", "/v1/health/checks/web").body) as? [[String: Any]])
        #expect(checks.first?["CheckID"] as? String == "_service_maintenance:web-1")
        #expect(checks.first?["Notes"] as? String == "disk")
        #expect(checks.first?["Status"] as? String == "critical")
        let passing = try #require(try JSONSerialization.jsonObject(with: http.request("GET", "/v1/health/service/web?passing").body) as? [[String: Any]])
        #expect(passing.count == 2)
        #expect(try http.request("PUT", "/v1/agent/service/maintenance/web-1?enable=false").status == 200)
        #expect(try http.request("GET", "/discover/web").json["count"] as? Int == 3)
        // Unknown services list nothing, with an index all the same.
        reply = try http.request("GET", "/v1/health/service/nothing-here")
        #expect(reply.status == 200 && String(decoding: reply.body, as: UTF8.self) == "[]")
        consulHeaders(reply)
    }

    @Test func badRequestsGetConsulsAnswersAndChangeNothing() throws {
        let registry = try RegistryProcess()
        let http = try registry.client()
        let before = try http.request("GET", "/v1/catalog/services").header("X-Consul-Index")
        let cases: [(String, String, String, Int, String)] = [
            ("PUT", "/v1/agent/service/register", "", 400, "Request decode failed"),
            ("PUT", "/v1/agent/service/register", "{", 400, "Request decode failed"),
            ("PUT", "/v1/agent/service/register", #"{"ID":"x"}"#, 400, "Missing service name"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Tagz":["x"]}"#, 400, #"unknown field "Tagz""#),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a b"}"#, 400, "Invalid service name"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Port":70000}"#, 400, "Port"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Address":"0.0.0.0"}"#, 400, "Invalid service address"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Weights":{"Passing":0}}"#, 400, "Passing must be greater than 0"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Check":{"HTTP":"http://x/"}}"#, 400, "Interval must be > 0"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Check":{"TTL":"0s"}}"#, 400, "TTL must be > 0"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Check":{"TTL":"5s","Interval":"1s"}}"#, 400, "cannot both"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Check":{"Args":["/bin/true"],"Interval":"1s"}}"#, 400, "script checks are not supported"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Check":{"GRPC":"x:1","Interval":"1s"}}"#, 400, "gRPC"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Check":{"HTTP":"http://x/","Interval":"soon"}}"#, 400, "invalid duration"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Check":{"HTTP":"ftp://x/","Interval":"1s"}}"#, 400, "Invalid service"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Check":{"TCP":"nohost","Interval":"1s"}}"#, 400, "host:port"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Check":{"TTL":"5s","Status":"great"}}"#, 400, "Status for checks must"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","Kind":"connect-proxy"}"#, 400, "not supported"),
            ("PUT", "/v1/agent/service/register", #"{"Name":"a","name":"b"}"#, 400, "given twice"),
            ("GET", "/v1/agent/service/register", "", 405, "method GET not allowed"),
            ("PUT", "/v1/agent/service/deregister/nope", "", 404, #"Unknown service ID "nope""#),
            ("PUT", "/v1/agent/service/maintenance/nope", "", 400, "Missing value for enable"),
            ("PUT", "/v1/agent/service/maintenance/nope?enable=maybe", "", 400, "Invalid value for enable"),
            ("PUT", "/v1/agent/service/maintenance/nope?enable=true", "", 404, "Unknown service ID"),
            ("PUT", "/v1/agent/check/pass/nope", "", 404, #"Unknown check ID "nope""#),
            ("PUT", "/v1/agent/check/update/nope", #"{"Status":"fine"}"#, 400, "Invalid check status: 'fine'"),
            ("GET", "/v1/health/service/x?wait=10", "", 400, "Invalid wait time"),
            ("GET", "/v1/health/service/x?index=-1", "", 400, "Invalid index"),
            ("GET", "/v1/health/service/x?passing=maybe", "", 400, "Invalid value for ?passing"),
            ("GET", "/v1/health/service/x?filter=Service.Port%3D%3D1", "", 400, "filter expressions are not supported"),
            ("GET", "/v1/health/service/x?dc=elsewhere", "", 500, "No path to datacenter"),
            ("GET", "/v1/kv/anything", "", 404, "Invalid URL path: not a recognized HTTP API endpoint"),
        ]
        for (method, path, body, status, text) in cases {
            let reply = try http.request(method, path, body: body.isEmpty ? nil : body)
            let answer = String(decoding: reply.body, as: UTF8.self)
            #expect(Int(reply.status) == status, "\(method) \(path) \(body): \(reply.status) \(answer)")
            #expect(answer.contains(text), "\(method) \(path) \(body): \(answer)")
            #expect(reply.header("Content-Type")?.hasPrefix("text/plain") == true)
            consulHeaders(reply)
        }
        // Parameters that change nothing here are accepted, never a failure.
        #expect(try http.request("GET", "/v1/health/service/x?stale&near=_agent&node-meta=consul-network-segment:&cached&tag=a&tag=b&dc=dc1").status == 200)
        #expect(try http.request("GET", "/v1/catalog/services").header("X-Consul-Index") == before, "a refused request changed something")
        #expect(try http.request("GET", "/services").json["total_services"] as? Int == 0)

        // A check that is not a TTL check cannot be reported, with Consul's 500.
        #expect(try http.request("PUT", "/v1/agent/service/register",
                                 body: #"{"Name":"a","ID":"a1","Port":1,"Check":{"TCP":"127.0.0.1:1","Interval":"1h"}}"#).status == 200)
        let reply = try http.request("PUT", "/v1/agent/check/pass/service:a1")
        #expect(reply.status == 500)
        #expect(String(decoding: reply.body, as: UTF8.self) == #"CheckID "service:a1" does not have associated TTL"#)
    }

    @Test func tokensComeAsConsulsHeaderOrQueryParameter() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("consul-acl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let acl = directory.appendingPathComponent("acl.json")
        try #"{"tokens": [{"name": "web-team", "token": "web-token-0123456789", "read": ["*"], "write": ["web"]}, {"name": "reader", "token": "reader-token-0123456789", "read": ["*"]}]}"#
            .write(to: acl, atomically: true, encoding: .utf8)
        let registry = try RegistryProcess(["--acl-file", acl.path])
        let http = try registry.client()
        let body = #"{"Name":"web","ID":"web-1","Port":1}"#
        var reply = try http.request("PUT", "/v1/agent/service/register", body: body)
        #expect(reply.status == 403, "no token: Consul's 403, not 401 (python-consul takes 401 for 'ACL disabled')")
        #expect(String(decoding: reply.body, as: UTF8.self).hasPrefix("Permission denied"))
        consulHeaders(reply)
        #expect(try http.request("PUT", "/v1/agent/service/register", body: body, headers: ["X-Consul-Token": "web-token-0123456789"]).status == 200)
        #expect(try http.request("PUT", "/v1/agent/service/register?token=web-token-0123456789", body: #"{"Name":"web","ID":"web-2","Port":2}"#).status == 200)
        reply = try http.request("PUT", "/v1/agent/service/register", body: #"{"Name":"db","Port":2}"#, headers: ["X-Consul-Token": "web-token-0123456789"])
        #expect(reply.status == 403)
        #expect(String(decoding: reply.body, as: UTF8.self).contains("write on service \"db\""))
        #expect(try http.request("PUT", "/v1/agent/service/register", body: body, headers: ["X-Consul-Token": "wrong-token-0000000000"]).status == 403)
        // A caller that may write nothing learns nothing of what exists: 403 before any 404.
        let probe = try http.request("PUT", "/v1/agent/service/deregister/no-such-id", headers: ["X-Consul-Token": "reader-token-0123456789"])
        #expect(probe.status == 403, "\(probe.status)")
        // ?token= is Consul's only: the native API does not read tokens from query strings.
        #expect(try http.request("GET", "/discover/web?token=web-token-0123456789").status == 401)
        let entries = try #require(try JSONSerialization.jsonObject(with: http.request("GET", "/v1/health/service/web?token=web-token-0123456789").body) as? [[String: Any]])
        #expect(entries.count == 2)
    }

    @Test func aTokenInTheQueryStringIsNotWrittenToTheAccessLog() throws {
        let registry = try RegistryProcess(["--access-log"])
        #expect(try registry.client().request("GET", "/v1/agent/self?token=secret-token-value-42&dc=dc1").status == 200)
        #expect(registry.waitForLog { $0.contains("/v1/agent/self?token=(hidden)&dc=dc1") })
        #expect(!registry.log.contains("secret-token-value-42"))
    }

    /// The calls Prometheus's `consul_sd_configs` makes, as its source (discovery/consul in
    /// v2.42) makes them, with what it requires of the answers. This is not Prometheus:
    /// Debian's prometheus package is built without Consul discovery (its changelog: "Disable
    /// Consul SD until its Debian package is back in shape"), so the real one cannot run here.
    @Test func theRequestsOfPrometheusConsulDiscoveryAreAnsweredAsItNeeds() throws {
        let registry = try RegistryProcess(["--checks", "off"])
        let http = try registry.client()
        #expect(try http.request("POST", "/register", body: #"{"service":"api","address":"http://127.0.0.1:9100","id":"api-1","tags":["prod"]}"#).status == 201)
        // Without a configured datacenter it asks the agent; Config.Datacenter must be a
        // string, and every top-level value an object (the Go client decodes a map of maps).
        let agent = try #require(try JSONSerialization.jsonObject(with: http.request("GET", "/v1/agent/self").body) as? [String: Any])
        #expect((agent["Config"] as? [String: Any])?["Datacenter"] as? String == "dc1")
        #expect(agent.values.allSatisfy { $0 is [String: Any] || $0 is NSNull })
        // catalog/services first without an index, then blocking with the last one.
        var reply = try http.request("GET", "/v1/catalog/services?wait=120000ms&stale=")
        let first = try #require(UInt64(reply.header("X-Consul-Index") ?? ""))
        #expect(first > 0, "Prometheus emits nothing while the index stays 0")
        reply = try http.request("GET", "/v1/health/service/api?wait=120000ms&stale=")
        let serviceIndex = try #require(UInt64(reply.header("X-Consul-Index") ?? ""))
        let entries = try #require(try JSONSerialization.jsonObject(with: reply.body) as? [[String: Any]])
        let service = try #require(entries.first?["Service"] as? [String: Any])
        #expect(service["Address"] as? String == "127.0.0.1" && service["Port"] as? Int == 9100 && service["Tags"] as? [String] == ["prod"])
        #expect((entries.first?["Node"] as? [String: Any])?["Address"] as? String == "127.0.0.1")
        #expect((entries.first?["Checks"] as? [[String: Any]])?.allSatisfy { ["passing", "warning", "critical"].contains($0["Status"] as? String ?? "") } == true)
        // A blocking read at the current index is held, and answered at the change with a higher index.
        let started = Date()
        let port = registry.port
        let changer = Thread {
            usleep(300_000)
            _ = try? TestHTTPClient(port: port).request("POST", "/deregister", body: #"{"service":"api","id":"api-1"}"#)
        }
        changer.start()
        reply = try TestHTTPClient(port: registry.port, timeout: 10).request("GET", "/v1/health/service/api?index=\(serviceIndex)&wait=120000ms&stale=")
        #expect(Date().timeIntervalSince(started) >= 0.25)
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(try #require(UInt64(reply.header("X-Consul-Index") ?? "")) > serviceIndex)
        #expect(String(decoding: reply.body, as: UTF8.self) == "[]")
    }
}
