import Access
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Tokens and permissions (`--acl-file`) against a live registry: every route with no token,
/// an unknown token, a token without the permission and one with it; hashed tokens; filtered
/// listings and streams; SIGHUP reloads; the tools' tokens.
@Suite(.serialized) struct LiveAccessTests {
    static let ops = "ops-token-0123456789abcdef"
    static let payments = "payments-token-0123456789"
    static let reader = "reader-token-0123456789ab"

    /// The issue's example shape: an operator, a hashed writer of payment-*, a reader, and
    /// anonymous reads of public-*.
    static func aclText(anonymous: String = #"{"read": ["public-*"]}"#) -> String {
        """
        {"tokens": [
           {"name": "ops", "token": "\(ops)", "operator": true},
           {"name": "payments", "sha256": "\(SHA256.hex(Array(payments.utf8)))", "write": ["payment-*"], "read": ["*"]},
           {"name": "reader", "token": "\(reader)", "read": ["*"]}],
         "anonymous": \(anonymous)}
        """
    }

    let directory: URL
    let aclURL: URL
    let registry: RegistryProcess

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("acl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        aclURL = directory.appendingPathComponent("acl.json")
        try Self.aclText().write(to: aclURL, atomically: true, encoding: .utf8)
        registry = try RegistryProcess(["--acl-file", aclURL.path])
    }

    private func call(_ method: String, _ path: String, body: String? = nil, token: String? = nil,
                      header: String = "Authorization") throws -> TestHTTPClient.Reply {
        var headers: [String: String] = [:]
        if let token { headers[header] = header == "Authorization" ? "Bearer \(token)" : token }
        return try registry.client().request(method, path, body: body, headers: headers)
    }

    private func message(_ reply: TestHTTPClient.Reply) -> String { reply.json["message"] as? String ?? "" }

    /// What a stream sends until `done` holds for it (or 5 s pass).
    private func read(_ stream: TestHTTPClient, until done: (String) -> Bool) -> String {
        var received = ""
        let deadline = Date().addingTimeInterval(5)
        while !done(received), Date() < deadline {
            received += String(decoding: (try? stream.receiveSome()) ?? Data(), as: UTF8.self)
        }
        return received
    }

    @Test func everyRouteWithoutATokenWithAWrongOneWithoutThePermissionAndWithIt() throws {
        let payment = #"{"service":"payment-api","address":"http://10.0.0.1:80"}"#
        // Writes: /register, /heartbeat, /status, /deregister.
        var reply = try call("POST", "/register", body: payment)
        #expect(reply.status == 401)
        #expect(message(reply).contains("write on service \"payment-api\""))
        #expect(reply.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
        #expect(reply.json["status"] as? String == "error")
        reply = try call("POST", "/register", body: payment, token: "not-a-token-of-this-registry")
        #expect(reply.status == 401)
        #expect(!message(reply).contains("not-a-token"), "a message never quotes a token")
        reply = try call("POST", "/register", body: payment, token: Self.reader)
        #expect(reply.status == 403)
        #expect(message(reply) == #"the token "reader" lacks write on service "payment-api""#)
        reply = try call("POST", "/register", body: payment, token: Self.payments)
        #expect(reply.status == 201, "a token given as its SHA-256 in the file")
        reply = try call("POST", "/register", body: #"{"service":"billing","address":"b"}"#, token: Self.payments)
        #expect(reply.status == 403)
        for route in ["/heartbeat", "/status", "/deregister"] {
            let body = route == "/status" ? #"{"service":"payment-api","address":"http://10.0.0.1:80","status":"UP"}"# : payment
            #expect(try call("POST", route, body: body).status == 401, Comment(rawValue: route))
            #expect(try call("POST", route, body: body, token: "wrong-token-0123456789").status == 401, Comment(rawValue: route))
            #expect(try call("POST", route, body: body, token: Self.reader).status == 403, Comment(rawValue: route))
        }
        // A denied write changed nothing, and revealed nothing: reader's deregister of a
        // missing instance is 403, not 404.
        #expect(try call("POST", "/deregister", body: #"{"service":"payment-api","address":"nope"}"#, token: Self.reader).status == 403)
        #expect(try call("GET", "/discover/payment-api", token: Self.reader).json["count"] as? Int == 1)
        #expect(try call("POST", "/heartbeat", body: payment, token: Self.payments).status == 200)
        #expect(try call("POST", "/status", body: #"{"service":"payment-api","address":"http://10.0.0.1:80","status":"UP"}"#,
                         token: Self.payments).status == 200)
        // X-Registry-Token works as Authorization does; the operator may write anything.
        reply = try call("POST", "/register", body: #"{"service":"public-web","address":"http://10.0.0.2:80"}"#, token: Self.ops,
                         header: "X-Registry-Token")
        #expect(reply.status == 201)

        // The scheme is case-insensitive; another scheme is no token this registry knows.
        #expect(try registry.client().request("GET", "/discover/payment-api", headers: ["Authorization": "bearer   \(Self.reader)"]).status == 200)
        #expect(try registry.client().request("GET", "/discover/payment-api", headers: ["Authorization": "Basic \(Self.reader)"]).status == 401)

        // Reads: anonymous may read public-* only.
        #expect(try call("GET", "/discover/public-web").status == 200)
        reply = try call("GET", "/discover/payment-api")
        #expect(reply.status == 401)
        #expect(message(reply).contains("read on service \"payment-api\""))
        #expect(try call("GET", "/discover/payment-api", token: "wrong-token-0123456789").status == 401)
        #expect(try call("GET", "/discover/payment-api", token: Self.reader).status == 200)
        #expect(try call("GET", "/watch/payment-api").status == 401)

        // Operator routes: /metrics and /cluster.
        for path in ["/metrics", "/cluster"] {
            #expect(try call("GET", path).status == 401, Comment(rawValue: path))
            #expect(try call("GET", path, token: Self.reader).status == 403, Comment(rawValue: path))
            #expect(try call("GET", path, token: Self.ops).status == 200, Comment(rawValue: path))
        }
        #expect(try call("POST", "/cluster/heartbeats", body: #"{"heartbeats":[]}"#, token: Self.payments).status == 403)
        // Probes stay open, whatever the token.
        #expect(try call("GET", "/health").status == 200)
        #expect(try call("GET", "/ready", token: "wrong-token-0123456789").status == 200)

        // Deregistering as the writer works; the operator may deregister anything.
        #expect(try call("POST", "/deregister", body: payment, token: Self.payments).status == 200)
        #expect(try call("POST", "/deregister", body: #"{"service":"public-web","address":"http://10.0.0.2:80"}"#,
                         token: Self.ops).status == 200)

        let metrics = try call("GET", "/metrics", token: Self.ops).text
        #expect(metrics.contains("registry_acl_enabled 1"))
        #expect(metrics.contains(#"registry_access_denied_total{route="/register",reason="no_token"} 1"#))
        #expect(metrics.contains(#"registry_access_denied_total{route="/register",reason="unknown_token"} 1"#))
        #expect(metrics.contains(#"registry_access_denied_total{route="/register",reason="forbidden"} 2"#))
        #expect(metrics.contains(#"registry_access_denied_total{route="/metrics",reason="forbidden"} 1"#))
    }

    @Test func listingsAndStreamsShowOnlyWhatTheCallerMayRead() throws {
        #expect(try call("POST", "/register", body: #"{"service":"payment-api","address":"p"}"#, token: Self.ops).status == 201)
        #expect(try call("POST", "/register", body: #"{"service":"public-web","address":"w"}"#, token: Self.ops).status == 201)
        let anonymous = try call("GET", "/services").json
        #expect((anonymous["services"] as? [String: Any]).map { Array($0.keys) } == ["public-web"])
        #expect(anonymous["total_services"] as? Int == 1)
        let everything = try call("GET", "/services", token: Self.reader).json
        #expect((everything["services"] as? [String: Any])?.keys.sorted() == ["payment-api", "public-web"])

        // /watch: the anonymous stream's first event lists public-web only, and a change to
        // payment-api sends it nothing it may not see.
        let stream = try registry.client()
        try stream.send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n")
        var received = read(stream) { $0.contains("total_services") }
        #expect(received.contains("public-web"))
        #expect(!received.contains("payment-api"))
        #expect(try call("POST", "/register", body: #"{"service":"payment-api","address":"p2"}"#, token: Self.ops).status == 201)
        #expect(try call("POST", "/register", body: #"{"service":"public-web","address":"w2"}"#, token: Self.ops).status == 201)
        received = read(stream) { $0.contains("\"total_instances\":2") }
        #expect(received.contains("\"total_instances\":2"))
        #expect(!received.contains("payment-api"))

        // A caller that may read nothing at all gets 401, not an empty list.
        try Self.aclText(anonymous: "{}").write(to: aclURL, atomically: true, encoding: .utf8)
        kill(registry.process.processIdentifier, SIGHUP)
        #expect(registry.waitForLog { $0.contains("INFO acl_reloaded ") })
        #expect(try call("GET", "/services").status == 401)
        #expect(try call("GET", "/services", token: Self.payments).json["total_services"] as? Int == 2)
    }

    @Test func sighupReloadsUnderLoadAndABrokenFileKeepsTheRules() throws {
        // Load: a thread keeps reading with the reader token through every reload.
        let failures = Shared(0), requests = Shared(0), stop = Shared(false), finished = Shared(false)
        let port = registry.port
        let load = Thread {
            defer { finished.set(true) }
            guard let client = try? TestHTTPClient(port: port, timeout: 5) else { failures.update { $0 += 1 }; return }
            while !stop.value {
                let status = (try? client.request("GET", "/services", headers: ["Authorization": "Bearer \(Self.reader)"]).status) ?? 0
                if status != 200 { failures.update { $0 += 1 } }
                requests.update { $0 += 1 }
            }
        }
        load.start()
        defer { stop.set(true) }

        // Broken: the rules in force stay, and the log says why.
        try "{\"tokens\": [".write(to: aclURL, atomically: true, encoding: .utf8)
        kill(registry.process.processIdentifier, SIGHUP)
        #expect(registry.waitForLog { $0.contains("ERROR acl_reload_failed ") && $0.contains("not valid JSON") })
        #expect(try call("GET", "/discover/public-web").status == 404, "anonymous still reads public-*")
        #expect(try call("GET", "/metrics", token: Self.ops).text.contains("registry_acl_reload_failures_total 1"))

        // Fixed, with anonymous reads of everything: in force at once, for the same connection too.
        try Self.aclText(anonymous: #"{"read": ["*"]}"#).write(to: aclURL, atomically: true, encoding: .utf8)
        let kept = try registry.client()
        #expect(try kept.request("GET", "/discover/payment-api").status == 401)
        for _ in 0..<5 {
            kill(registry.process.processIdentifier, SIGHUP)
            usleep(50_000)
        }
        #expect(registry.waitForLog { $0.contains("INFO acl_reloaded ") && $0.contains("anonymous=\"read on *\"") })
        #expect(try kept.request("GET", "/discover/payment-api").status == 404)

        // A token removed from the file no longer works, on a connection that sent it before
        // (which remembers its caller) too, and its open stream ends.
        let remembered = try registry.client()
        #expect(try remembered.request("GET", "/services", headers: ["Authorization": "Bearer \(Self.reader)"]).status == 200)
        let stream = try registry.client()
        try stream.send("GET /watch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(Self.reader)\r\n\r\n")
        #expect(read(stream) { $0.contains("total_services") }.contains("total_services"))
        try #"{"tokens": [{"name": "ops", "token": "\#(Self.ops)", "operator": true}]}"#.write(to: aclURL, atomically: true, encoding: .utf8)
        stop.set(true)
        let deadline = Date().addingTimeInterval(10)
        while !finished.value, Date() < deadline { usleep(10_000) }
        kill(registry.process.processIdentifier, SIGHUP)
        #expect(registry.waitForLog { $0.contains("INFO acl_reloaded ") && $0.contains("tokens=1 ") })
        #expect(read(stream) { $0.hasSuffix("0\r\n\r\n") }.hasSuffix("0\r\n\r\n"), "the revoked token's stream ended")
        #expect(try call("GET", "/services", token: Self.reader).status == 401)
        #expect(try remembered.request("GET", "/services", headers: ["Authorization": "Bearer \(Self.reader)"]).status == 401)
        #expect(try remembered.request("GET", "/services", headers: ["X-Registry-Token": Self.ops]).status == 200,
                "another token on the same connection is its own")
        #expect(try call("GET", "/watch", token: Self.reader).status == 401)
        #expect(failures.value == 0, "every read during the reloads was answered 200")
        #expect(requests.value > 0)
        #expect(registry.stop() == 0)
    }

    @Test func aBrokenFileStopsTheStartWithTheReason() throws {
        let broken = directory.appendingPathComponent("broken.json")
        try #"{"tokens": [{"name": "a", "token": "short"}]}"#.write(to: broken, atomically: true, encoding: .utf8)
        var outcome = try RegistryProcess.runToExit(["--acl-file", broken.path])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("shorter than 16 bytes"))
        outcome = try RegistryProcess.runToExit(["--acl-file", directory.appendingPathComponent("missing.json").path])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("cannot read the ACL file"))
        outcome = try RegistryProcess.runToExit(["--acl-file", aclURL.path, "--etcd", "http://127.0.0.1:1"])
        #expect(outcome.status == 2)
        #expect(outcome.stderr.contains("--replica-token-file"))
    }

    @Test func registryctlSendsItsTokenFromTheFlagAFileOrTheEnvironment() throws {
        let ctl = RegistryProcess.binaryURL.deletingLastPathComponent().appendingPathComponent("registryctl")
        func run(_ arguments: [String], environment extra: [String: String] = [:]) throws -> (Int32, String) {
            let process = Process()
            process.executableURL = ctl
            process.arguments = arguments
            var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("REGISTRY_") }
            environment["REGISTRY_URL"] = "http://127.0.0.1:\(registry.port)"
            environment.merge(extra) { $1 }
            process.environment = environment
            let err = Pipe()
            process.standardError = err
            process.standardOutput = Pipe()
            try process.run()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, stderr)
        }
        var (status, stderr) = try run(["register", "payment-api", "http://p:1"])
        #expect(status == 1)
        #expect(stderr.contains("needs a token with write on service"))
        (status, _) = try run(["--token", Self.payments, "register", "payment-api", "http://p:1"])
        #expect(status == 0)
        let file = directory.appendingPathComponent("token")
        try "\(Self.payments)\n".write(to: file, atomically: true, encoding: .utf8)
        (status, _) = try run(["heartbeat", "payment-api", "http://p:1", "--token-file", file.path])
        #expect(status == 0)
        (status, _) = try run(["deregister", "payment-api", "http://p:1"], environment: ["REGISTRY_TOKEN_FILE": file.path])
        #expect(status == 0)
        (status, stderr) = try run(["services"], environment: ["REGISTRY_TOKEN": "wrong-token-0123456789"])
        #expect(status == 1)
        #expect(stderr.contains("not one this registry knows"))
        (status, stderr) = try run(["services", "--token-file", directory.appendingPathComponent("none").path])
        #expect(status == 2)
        #expect(stderr.contains("cannot read the token file"))
    }
}
