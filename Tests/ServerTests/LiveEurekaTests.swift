import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Eureka's REST API against the real binary: py-eureka-client (PyPI, in .build/eureka-clients)
/// registering, renewing, discovering and coming back after a 404; Prometheus's
/// `eureka_sd_configs` (Debian's, which has it); the answers' shapes field by field.
@Suite(.serialized) struct LiveEurekaTests {
    static let python = LiveConsulTests.root.appendingPathComponent(".build/eureka-clients/bin/python")

    static let registration = #"{"instance":{"instanceId":"h1:shop:8080","hostName":"h1","app":"SHOP","ipAddr":"10.0.0.1","status":"UP","#
        + #""overriddenstatus":"UNKNOWN","port":{"$":8080,"@enabled":"true"},"securePort":{"$":8443,"@enabled":"false"},"countryId":1,"#
        + #""dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},"#
        + #""leaseInfo":{"renewalIntervalInSecs":30,"durationInSecs":90},"metadata":{"zone":"a","@class":"java.util.HashMap"},"#
        + #""vipAddress":"shop","lastDirtyTimestamp":"1700000000000"}}"#

    private func runScenario(_ registry: RegistryProcess, token: String?) throws -> String {
        try #require(FileManager.default.isExecutableFile(atPath: Self.python.path),
                     "\(Self.python.path) is missing: run scripts/install-test-tools.sh (make test does)")
        let (status, text) = try PythonScript.run(Self.python, "Tests/EurekaClients/scenario.py", [String(registry.port)] + (token.map { [$0] } ?? []))
        #expect(status == 0, "\(text)\nregistry log:\n\(registry.log.suffix(3000))")
        #expect(text.contains("\ndone\n"), Comment(rawValue: text))
        print(text.split(separator: "\n").filter { $0.hasPrefix("ok:") }.joined(separator: "\n"))
        return text
    }

    @Test func pyEurekaClientRegistersRenewsDiscoversAndComesBackAfterA404() throws {
        let registry = try RegistryProcess(["--checks", "off"])
        #expect(try registry.client().request("POST", "/register", body: #"{"service":"other","address":"http://127.0.0.1:9101","ttl_seconds":3600}"#).status == 201)
        _ = try runScenario(registry, token: nil)
        // stop() deregistered it (with a DELETE after a DOWN registration).
        #expect(registry.waitForLog { $0.contains("deregistered service=my-py") })
    }

    @Test func pyEurekaClientSendsItsTokenAsBasicCredentials() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("eureka-acl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let acl = directory.appendingPathComponent("acl.json")
        let token = "eureka-token-0123456789"
        try #"{"tokens": [{"name": "apps", "token": "\#(token)", "read": ["*"], "write": ["*"]}]}"#.write(to: acl, atomically: true, encoding: .utf8)
        let registry = try RegistryProcess(["--checks", "off", "--acl-file", acl.path])
        let http = try registry.client()
        #expect(try http.request("POST", "/register", body: #"{"service":"other","address":"http://127.0.0.1:9101","ttl_seconds":3600}"#,
                                 headers: ["Authorization": "Bearer \(token)"]).status == 201)
        let refused = try http.request("GET", "/eureka/apps/")
        #expect(refused.status == 401 && refused.header("WWW-Authenticate")?.hasPrefix("Basic") == true)
        let basic = "Basic " + Data("anyone:\(token)".utf8).base64EncodedString()
        #expect(try http.request("GET", "/eureka/apps/", headers: ["Authorization": basic]).status == 200)
        _ = try runScenario(registry, token: token)
    }

    @Test func answersHaveEurekasShapesInXMLAndJSON() throws {
        let registry = try RegistryProcess(["--checks", "off"])
        let http = try registry.client()
        var reply = try http.request("POST", "/eureka/apps/SHOP", body: Self.registration, headers: ["Content-Type": "application/json"])
        #expect(reply.status == 204 && reply.body.isEmpty)
        #expect(try http.request("POST", "/register", body: #"{"service":"Shop","address":"https://[fd00::5]:9443","id":"native-1","status":"DOWN"}"#).status == 201)
        #expect(try http.request("GET", "/discover/shop").json["instances"].map { ($0 as? [[String: Any]])?.first?["address"] as? String } == "http://10.0.0.1:8080")

        // XML by default, as Eureka's clients and Prometheus read it.
        reply = try http.request("GET", "/eureka/apps")
        #expect(reply.header("Content-Type") == "application/xml")
        let document = try XMLDocument(data: reply.body)
        let root = try #require(document.rootElement())
        #expect(root.name == "applications")
        #expect(root.elements(forName: "versions__delta").first?.stringValue == "1")
        #expect(root.elements(forName: "apps__hashcode").first?.stringValue == "DOWN_1_UP_1_", "both native names are one app")
        let application = try #require(root.elements(forName: "application").first)
        #expect(application.elements(forName: "name").first?.stringValue == "SHOP")
        let instances = application.elements(forName: "instance")
        #expect(instances.count == 2)
        let first = try #require(instances.first { $0.elements(forName: "instanceId").first?.stringValue == "h1:shop:8080" })
        func text(_ element: XMLElement, _ name: String) -> String? { element.elements(forName: name).first?.stringValue }
        #expect(first.children?.compactMap(\.name).prefix(11) == ["instanceId", "hostName", "app", "ipAddr", "status", "overriddenstatus", "port",
                                                                   "securePort", "countryId", "dataCenterInfo", "leaseInfo"])
        #expect(text(first, "app") == "SHOP" && text(first, "ipAddr") == "10.0.0.1" && text(first, "status") == "UP")
        let port = try #require(first.elements(forName: "port").first)
        #expect(port.stringValue == "8080" && port.attribute(forName: "enabled")?.stringValue == "true")
        #expect(first.elements(forName: "dataCenterInfo").first?.attribute(forName: "class")?.stringValue
            == "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo")
        #expect(first.elements(forName: "leaseInfo").first.flatMap { text($0, "durationInSecs") } == "90")
        #expect(first.elements(forName: "metadata").first.flatMap { text($0, "zone") } == "a", "@class is not metadata")
        #expect(text(first, "actionType") == "ADDED" && text(first, "vipAddress") == "shop")
        let secure = try #require(instances.first { $0.elements(forName: "instanceId").first?.stringValue == "native-1" })
        #expect(text(secure, "status") == "DOWN" && text(secure, "ipAddr") == "fd00::5")
        #expect(secure.elements(forName: "securePort").first?.attribute(forName: "enabled")?.stringValue == "true")
        #expect(secure.elements(forName: "securePort").first?.stringValue == "9443")
        #expect(secure.elements(forName: "metadata").first?.attribute(forName: "class")?.stringValue == "java.util.Collections$EmptyMap")

        // JSON when Accept says so: arrays always, `@enabled` and the @Auto fields as strings.
        reply = try http.request("GET", "/eureka/apps", headers: ["Accept": "application/json"])
        #expect(reply.header("Content-Type") == "application/json")
        let json = try #require(try JSONSerialization.jsonObject(with: reply.body) as? [String: Any])
        let applications = try #require(json["applications"] as? [String: Any])
        #expect(applications["versions__delta"] as? String == "1" && applications["apps__hashcode"] as? String == "DOWN_1_UP_1_")
        let instance = try #require(((applications["application"] as? [[String: Any]])?.first?["instance"] as? [[String: Any]])?
            .first { $0["instanceId"] as? String == "h1:shop:8080" })
        #expect((instance["port"] as? [String: Any])?["$"] as? Int == 8080)
        #expect((instance["port"] as? [String: Any])?["@enabled"] as? String == "true")
        #expect(instance["overriddenStatus"] as? String == "UNKNOWN")
        #expect(instance["lastDirtyTimestamp"] is String && instance["isCoordinatingDiscoveryServer"] as? String == "false")
        #expect((instance["dataCenterInfo"] as? [String: Any])?["@class"] as? String == "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo")

        // One app, one instance, by id, by VIP.
        #expect(try http.request("GET", "/eureka/apps/shop").status == 200, "app names match without case")
        #expect(try http.request("GET", "/eureka/apps/SHOP/h1:shop:8080", headers: ["Accept": "application/json"]).json["instance"] != nil)
        #expect(try http.request("GET", "/eureka/instances/native-1").status == 200)
        #expect(String(decoding: try http.request("GET", "/eureka/vips/shop").body, as: UTF8.self).contains("<instanceId>h1:shop:8080</instanceId>"))
        // A character XML 1.0 refuses, which the native rules let through, must not break the document.
        #expect(try http.request("POST", "/register", body: #"{"service":"shop","address":"http://10.0.0.3:1","metadata":{"odd":"a\uFFFFb"}}"#).status == 201)
        #expect(throws: Never.self) { _ = try XMLDocument(data: try http.request("GET", "/eureka/apps").body) }
        let none = try http.request("GET", "/eureka/vips/nothing")
        #expect(none.status == 200 && String(decoding: none.body, as: UTF8.self).contains("<applications>"), "an unknown VIP is an empty list, as Eureka's")
    }

    @Test func writesAnswerAsEurekaDoes() throws {
        let registry = try RegistryProcess(["--checks", "off"])
        let http = try registry.client()
        func post(_ body: String, app: String = "SHOP") throws -> (Int, String) {
            let reply = try http.request("POST", "/eureka/apps/\(app)", body: body, headers: ["Content-Type": "application/json"])
            return (reply.status, String(decoding: reply.body, as: UTF8.self))
        }
        let noHost = Self.registration.replacingOccurrences(of: #""instanceId":"h1:shop:8080","hostName":"h1","#, with: "")
        #expect(try post(noHost) == (400, "Missing instanceId"))
        #expect(try post(Self.registration.replacingOccurrences(of: #""ipAddr":"10.0.0.1","#, with: "")) == (400, "Missing ip address"))
        #expect(try post(Self.registration.replacingOccurrences(of: #""name":"MyOwn""#, with: #""name":"""#)) == (400, "Missing dataCenterInfo Name"))
        #expect(try post(Self.registration, app: "OTHER") == (400, "Mismatched appName, expecting OTHER but was SHOP"))
        #expect(try post("{").0 == 400)
        #expect(try post("<instance><hostName>x</hostName>").0 == 400)
        #expect(try http.request("GET", "/services").json["total_services"] as? Int == 0, "a refused registration changed something")
        // The XML form registers too (instanceId defaults to the host name).
        let xml = "<instance><hostName>h2</hostName><app>SHOP</app><ipAddr>10.0.0.2</ipAddr><status>UP</status>"
            + "<port enabled=\"true\">8081</port><dataCenterInfo class=\"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo\"><name>MyOwn</name></dataCenterInfo></instance>"
        #expect(try post(xml).0 == 204)
        #expect(try post(Self.registration).0 == 204)
        #expect(try http.request("GET", "/discover/shop").json["count"] as? Int == 2)

        #expect(try http.request("PUT", "/eureka/apps/SHOP/h1:shop:8080?status=UP&lastDirtyTimestamp=1").status == 200)
        let unknown = try http.request("PUT", "/eureka/apps/SHOP/nope?status=UP")
        #expect(unknown.status == 404 && unknown.body.isEmpty, "a client registers again on this 404")
        #expect(try http.request("PUT", "/eureka/apps/SHOP/h1%3Ashop%3A8080/status?value=OUT_OF_SERVICE").status == 200)
        #expect(try http.request("GET", "/discover/shop?status=OUT_OF_SERVICE").json["count"] as? Int == 1)
        #expect(try post(Self.registration).0 == 204)
        #expect(try http.request("GET", "/discover/shop?status=OUT_OF_SERVICE").json["count"] as? Int == 1, "the override outlives a re-registration")
        #expect(try http.request("PUT", "/eureka/apps/SHOP/h1:shop:8080/status?value=GREAT").status == 500, "Eureka's answer to an unknown status")
        #expect(try http.request("DELETE", "/eureka/apps/SHOP/h1:shop:8080/status").status == 200)
        #expect(try http.request("GET", "/discover/shop").json["count"] as? Int == 2)
        #expect(try http.request("PUT", "/eureka/apps/SHOP/h1:shop:8080/metadata?version=2&zone=b").status == 200)
        let metadata = (try http.request("GET", "/discover/shop").json["instances"] as? [[String: Any]])?.first { $0["id"] as? String == "h1:shop:8080" }?["metadata"]
        #expect(metadata as? [String: String] == ["version": "2", "zone": "b"])

        // The delta: what changed lately, each with its actionType.
        _ = try http.request("GET", "/eureka/apps/delta")
        #expect(try http.request("DELETE", "/eureka/apps/SHOP/h2").status == 200)
        #expect(try http.request("DELETE", "/eureka/apps/SHOP/h2").status == 404)
        #expect(try http.request("PUT", "/eureka/apps/SHOP/h1:shop:8080/status?value=DOWN").status == 200)
        let delta = String(decoding: try http.request("GET", "/eureka/apps/delta").body, as: UTF8.self)
        #expect(delta.contains("<instanceId>h2</instanceId>") && delta.contains("<actionType>DELETED</actionType>"), Comment(rawValue: delta))
        #expect(delta.contains("<actionType>MODIFIED</actionType>") && delta.contains("<apps__hashcode>DOWN_1_</apps__hashcode>"), Comment(rawValue: delta))
        #expect(!delta.contains("<versions__delta>1</versions__delta>"))
        let path = try http.request("GET", "/eureka/peerreplication/batch")
        #expect(path.status == 404 && path.body.isEmpty)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus"), "prometheus is not installed: run scripts/install-test-tools.sh"))
    func prometheusDiscoversTheInstancesThroughEurekaDiscovery() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("prometheus-eureka-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let registry = try RegistryProcess(["--checks", "off"])
        let http = try registry.client()
        #expect(try http.request("POST", "/register", body: #"{"service":"api","address":"http://127.0.0.1:9","id":"api-9","ttl_seconds":3600,"metadata":{"team":"pay"}}"#).status == 201)
        #expect(try http.request("POST", "/eureka/apps/API", body: Self.registration.replacingOccurrences(of: "SHOP", with: "API")
            .replacingOccurrences(of: "10.0.0.1", with: "127.0.0.1"), headers: ["Content-Type": "application/json"]).status == 204)
        let prometheus = try Prometheus(directory: directory, scrapeConfig: """
              - job_name: registry
                eureka_sd_configs:
                  - server: http://127.0.0.1:\(registry.port)/eureka
                    refresh_interval: 1s
            """)
        var targets = prometheus.waitFor(30) { $0.count == 2 }
        #expect(targets.count == 2, Comment(rawValue: prometheus.log()))
        let native = targets.first { ($0["discoveredLabels"] as? [String: String])?["__address__"] == "127.0.0.1:9" }
        let labels = native?["discoveredLabels"] as? [String: String] ?? [:]
        #expect(labels["__meta_eureka_app_name"] == "API")
        #expect(labels["__meta_eureka_app_instance_id"] == "api-9")
        #expect(labels["__meta_eureka_app_instance_status"] == "UP")
        #expect(labels["__meta_eureka_app_instance_metadata_team"] == "pay")
        #expect(labels["__meta_eureka_app_instance_port_enabled"] == "true")
        #expect(try http.request("POST", "/deregister", body: #"{"service":"api","id":"api-9"}"#).status == 200)
        let removed = Date()
        targets = prometheus.waitFor(10) { $0.count == 1 }
        #expect(targets.count == 1)
        #expect(Date().timeIntervalSince(removed) < 6)
    }
}
