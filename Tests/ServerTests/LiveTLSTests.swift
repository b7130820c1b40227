import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A command run to its exit: status, stdout and stderr.
struct CommandRun {
    let status: Int32
    let stdout: String
    let stderr: String

    static func run(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                    input: String? = nil) throws -> CommandRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
        process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("REGISTRY_") }
        environment.merge(extra) { $1 }
        process.environment = environment
        // stderr to a file: a child that fills one pipe while we wait on the other would hang.
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        let out = Pipe(), inPipe = Pipe()
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = inPipe
        try process.run()
        if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
        try? inPipe.fileHandleForWriting.close()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errData = (try? Data(contentsOf: errURL)) ?? Data()
        return CommandRun(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                          stderr: String(decoding: errData, as: UTF8.self))
    }
}

/// Certificates made by `scripts/make-certs.sh` (a CA, the server's, clients', an expired
/// one and one of another CA) in a fresh folder.
struct TestCertificates {
    let directory: URL

    init(clients: [String] = ["payments", "ops"]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("certs-\(UUID().uuidString)")
        let script = SchemathesisTests.packageRoot.appendingPathComponent("scripts/make-certs.sh").path
        let made = try CommandRun.run("bash", [script, directory.path] + clients)
        guard made.status == 0 else { throw RegistryProcess.StartFailure(description: "make-certs.sh failed: \(made.stderr)") }
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    var ca: String { path("ca.pem") }
    var serverFlags: [String] { ["--tls-cert", path("server.pem"), "--tls-key", path("server-key.pem")] }
    /// curl's flags for the client certificate `name` (client-NAME.pem, or expired/stranger).
    func curlCertificate(_ name: String) -> [String] {
        let base = name == "expired" || name == "stranger" ? name : "client-\(name)"
        return ["--cert", path("\(base).pem"), "--key", path("\(base)-key.pem")]
    }
}

/// HTTPS (`--tls-cert`, `--tls-key`, `--tls-port`) and mutual TLS (`--tls-client-ca`) on a live
/// registry, through real clients: curl, Python's ssl module, registryctl and example-service.
@Suite(.serialized) struct LiveTLSTests {
    let certificates: TestCertificates

    init() throws {
        certificates = try TestCertificates()
    }

    /// curl against the registry: `-w` appends the status on its own line.
    func curl(_ url: String, _ extra: [String] = []) throws -> (status: Int, body: String, exit: Int32, stderr: String) {
        let run = try CommandRun.run("curl", ["-sS", "--max-time", "5", "-w", "\n%{http_code}"] + extra + [url])
        let lines = run.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"), run.status, run.stderr)
    }

    func metric(_ registry: RegistryProcess, _ line: String, token: String? = nil) throws -> Bool {
        var headers: [String: String] = [:]
        if let token { headers["Authorization"] = "Bearer \(token)" }
        return try registry.client().request("GET", "/metrics", headers: headers).text.contains(line)
    }

    @Test func httpsAndPlainHTTPServeOneRegistrySideBySide() throws {
        let registry = try RegistryProcess(certificates.serverFlags + ["--tls-port", "0"])
        let tls = try #require(registry.tlsPort)
        #expect(tls != registry.port)
        let https = "https://localhost:\(tls)"
        let ca = ["--cacert", certificates.ca]
        var reply = try curl("\(https)/register", ca + ["-X", "POST", "-d", #"{"service":"api","address":"http://10.0.0.1:80"}"#])
        #expect(reply.status == 201, Comment(rawValue: reply.stderr))
        // Written over TLS, read over plain HTTP, and the other way round.
        let plain = try registry.client().request("GET", "/discover/api")
        #expect(plain.status == 200)
        #expect(plain.text.contains("10.0.0.1"))
        #expect(try registry.client().request("POST", "/register", body: #"{"service":"api","address":"http://10.0.0.2:80"}"#).status == 201)
        reply = try curl("\(https)/discover/api", ca)
        #expect(reply.body.contains("10.0.0.2"))
        // The certificate is checked by name: 127.0.0.1 is one of its names, 127.0.0.2 is not.
        #expect(try curl("https://127.0.0.1:\(tls)/health", ca).status == 200)
        reply = try curl("https://localhost:\(tls)/health")
        #expect(reply.exit == 60, "without the CA, curl refuses the certificate")
        // TLS 1.2 and 1.3 only.
        #expect(try curl("\(https)/health", ca + ["--tlsv1.2", "--tls-max", "1.2"]).status == 200)
        reply = try curl("\(https)/health", ca + ["--tls-max", "1.1"])
        #expect(reply.exit != 0)
        #expect(reply.stderr.contains("protocol version"), Comment(rawValue: reply.stderr))
        // Plain HTTP on the TLS port and TLS on the plain port get no answer, not a crash.
        #expect(try curl("http://127.0.0.1:\(tls)/health").status != 200)
        #expect(try curl("https://127.0.0.1:\(registry.port)/health", ca).exit != 0)
        // Keep-alive over TLS: several requests on one connection, one handshake.
        let before = try registry.client().request("GET", "/metrics").text
        let handshakes = { (text: String) in
            text.split(separator: "\n").first { $0.hasPrefix("registry_tls_handshakes_total ") }.flatMap { Int($0.split(separator: " ")[1]) } ?? -1
        }
        let many = try CommandRun.run("curl", ["-sS", "-v", "--cacert", certificates.ca, "\(https)/health", "\(https)/services", "\(https)/discover/api"])
        #expect(many.status == 0)
        #expect(many.stderr.contains("Re-using existing connection"), Comment(rawValue: many.stderr))
        let after = try registry.client().request("GET", "/metrics").text
        #expect(handshakes(after) == handshakes(before) + 1)
        #expect(after.contains("registry_tls_enabled 1"))
        #expect(after.contains(#"registry_tls_handshakes_refused_total{reason="protocol version"} 1"#))
        #expect(registry.log.contains("tls_loaded"))
    }

    @Test func streamsLongPollsAndLargeAnswersGoThroughTLS() throws {
        let registry = try RegistryProcess(certificates.serverFlags + ["--tls-port", "0"])
        let https = "https://localhost:\(try #require(registry.tlsPort))"
        // 600 instances: an answer of well over 100 KB, written by OpenSSL in many records.
        for index in 0..<600 {
            let body = #"{"service":"big","address":"http://10.0.\#(index / 250).\#(index % 250):8080","metadata":{"pad":"\#(String(repeating: "x", count: 150))"}}"#
            #expect(try registry.client().request("POST", "/register", body: body).status == 201)
        }
        let big = try curl("\(https)/discover/big", ["--cacert", certificates.ca])
        #expect(big.status == 200)
        #expect(big.body.utf8.count > 100_000)
        #expect((try JSONSerialization.jsonObject(with: Data(big.body.utf8)) as? [String: Any])?["instances"].map { ($0 as? [Any])?.count } == 600)
        // A stream over TLS: its first event, then the change a plain-HTTP write makes.
        let stream = Process()
        stream.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        stream.arguments = ["curl", "-sN", "--max-time", "5", "--cacert", certificates.ca, "\(https)/watch/api"]
        let output = Pipe()
        stream.standardOutput = output
        try stream.run()
        usleep(500_000)
        #expect(try registry.client().request("POST", "/register", body: #"{"service":"api","address":"http://10.9.9.9:80"}"#).status == 201)
        usleep(500_000)
        kill(stream.processIdentifier, SIGTERM)
        let events = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        stream.waitUntilExit()
        #expect(events.contains("event: state"))
        #expect(events.contains("10.9.9.9"), Comment(rawValue: events))
        // A blocking query over TLS, answered by a change.
        let index = try registry.client().request("GET", "/discover/api").header("X-Registry-Index") ?? "0"
        let plainPort = registry.port
        let writer = Thread {
            usleep(300_000)
            _ = try? TestHTTPClient(port: plainPort).request("POST", "/register", body: #"{"service":"api","address":"http://10.9.9.10:80"}"#)
        }
        writer.start()
        let started = Date()
        let polled = try curl("\(https)/discover/api?index=\(index)&wait=5s", ["--cacert", certificates.ca])
        #expect(polled.body.contains("10.9.9.10"))
        #expect(Date().timeIntervalSince(started) < 4, "answered by the change, not the wait")
    }

    @Test func mutualTLSMapsCertificatesToPermissionsAndRefusesBadOnes() throws {
        let directory = certificates.directory
        let acl = directory.appendingPathComponent("acl.json")
        try #"""
        {"tokens": [
           {"name": "ops", "token": "ops-token-0123456789abcdef", "operator": true},
           {"name": "payments", "cert_subject": "spiffe://registry/payments", "write": ["payment-*"], "read": ["*"]}],
         "anonymous": {"read": ["*"]}}
        """#.write(to: acl, atomically: true, encoding: .utf8)
        let registry = try RegistryProcess(certificates.serverFlags + ["--tls-port", "0", "--tls-client-ca", certificates.ca,
                                                                      "--acl-file", acl.path])
        let https = "https://localhost:\(try #require(registry.tlsPort))"
        let ca = ["--cacert", certificates.ca]
        let register = ["-X", "POST", "-d", #"{"service":"payment-api","address":"http://10.0.0.1:80"}"#]
        // The payments certificate (its URI name) may write payment-* and nothing else.
        var reply = try curl("\(https)/register", ca + certificates.curlCertificate("payments") + register)
        #expect(reply.status == 201, Comment(rawValue: reply.body + reply.stderr))
        reply = try curl("\(https)/register", ca + certificates.curlCertificate("payments")
                         + ["-X", "POST", "-d", #"{"service":"orders","address":"http://10.0.0.1:80"}"#])
        #expect(reply.status == 403)
        #expect(reply.body.contains(#"lacks write on service \"orders\""#))
        // A good certificate no entry names is anonymous: it reads, and may not write.
        reply = try curl("\(https)/register", ca + certificates.curlCertificate("ops") + register)
        #expect(reply.status == 401)
        #expect(try curl("\(https)/discover/payment-api", ca + certificates.curlCertificate("ops")).status == 200)
        // A token wins over the certificate.
        reply = try curl("\(https)/metrics", ca + certificates.curlCertificate("ops") + ["-H", "Authorization: Bearer ops-token-0123456789abcdef"])
        #expect(reply.status == 200)
        // No certificate, an expired one, one of another CA: no handshake, so no request.
        reply = try curl("\(https)/health", ca)
        #expect(reply.exit != 0 && reply.status == 0, Comment(rawValue: reply.stderr))
        #expect(try curl("\(https)/health", ca + certificates.curlCertificate("expired")).status == 0)
        #expect(try curl("\(https)/health", ca + certificates.curlCertificate("stranger")).status == 0)
        // The plain port has no certificates: probes and what anonymous may read.
        #expect(try registry.client().request("GET", "/health").status == 200)
        #expect(try registry.client().request("GET", "/discover/payment-api").status == 200)
        #expect(try registry.client().request("POST", "/deregister", body: #"{"service":"payment-api","address":"http://10.0.0.1:80"}"#).status == 401)
        let metrics = try registry.client().request("GET", "/metrics", headers: ["Authorization": "Bearer ops-token-0123456789abcdef"]).text
        #expect(metrics.contains(#"registry_tls_handshakes_refused_total{reason="certificate required"} 1"#), Comment(rawValue: metrics))
        #expect(metrics.contains(#"registry_tls_handshakes_refused_total{reason="certificate has expired"} 1"#))
        #expect(metrics.contains(#"registry_tls_handshakes_refused_total{reason="unable to get local issuer certificate"} 1"#))
        #expect(registry.log.contains("tls_handshake_refused reason=\"certificate required\""))
        #expect(registry.log.contains("client_certificates=required"))
    }

    @Test func sighupReloadsTheCertificatesAndABadFileKeepsTheOldOnes() throws {
        let live = certificates.directory.appendingPathComponent("live")
        try FileManager.default.createDirectory(at: live, withIntermediateDirectories: true)
        let cert = live.appendingPathComponent("server.pem"), key = live.appendingPathComponent("server-key.pem")
        try FileManager.default.copyItem(atPath: certificates.path("server.pem"), toPath: cert.path)
        try FileManager.default.copyItem(atPath: certificates.path("server-key.pem"), toPath: key.path)
        let registry = try RegistryProcess(["--tls-cert", cert.path, "--tls-key", key.path, "--tls-port", "0"])
        let tls = try #require(registry.tlsPort)
        // A connection open across the reload goes on with its session.
        let held = Process()
        held.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        held.arguments = ["python3", "-c", """
            import socket, ssl, sys, time
            ctx = ssl.create_default_context(cafile=sys.argv[1])
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[2]))), server_hostname="localhost")
            for i in range(2):
                s.sendall(b"GET /health HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n")
                data = b""
                while b"\\r\\n\\r\\n" not in data or len(data.split(b"\\r\\n\\r\\n", 1)[1]) < int(data.split(b"Content-Length: ")[1].split(b"\\r\\n")[0]):
                    data += s.recv(65536)
                print(data.split(b"\\r\\n")[0].decode(), flush=True)
                time.sleep(1.5)
            """, certificates.ca, String(tls)]
        let heldOutput = Pipe()
        held.standardOutput = heldOutput
        try held.run()
        usleep(300_000)
        // New certificates from a new CA, in place; SIGHUP.
        let renewed = try TestCertificates()
        try FileManager.default.removeItem(at: cert)
        try FileManager.default.removeItem(at: key)
        try FileManager.default.copyItem(atPath: renewed.path("server.pem"), toPath: cert.path)
        try FileManager.default.copyItem(atPath: renewed.path("server-key.pem"), toPath: key.path)
        kill(registry.process.processIdentifier, SIGHUP)
        #expect(registry.waitForLog { $0.contains("tls_reloaded") })
        #expect(try curl("https://localhost:\(tls)/health", ["--cacert", renewed.ca]).status == 200)
        #expect(try curl("https://localhost:\(tls)/health", ["--cacert", certificates.ca]).exit == 60)
        held.waitUntilExit()
        let heldLines = String(decoding: heldOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(heldLines == "HTTP/1.1 200 OK\nHTTP/1.1 200 OK\n", "the open connection kept its session")
        // A broken file: the reload is refused, and the certificates in force stay.
        try "not a certificate".write(to: cert, atomically: true, encoding: .utf8)
        kill(registry.process.processIdentifier, SIGHUP)
        #expect(registry.waitForLog { $0.contains("tls_reload_failed") })
        #expect(try curl("https://localhost:\(tls)/health", ["--cacert", renewed.ca]).status == 200)
        let metrics = try registry.client().request("GET", "/metrics").text
        #expect(metrics.contains("registry_tls_reloads_total 1"))
        #expect(metrics.contains("registry_tls_reload_failures_total 1"))
    }

    @Test func theTransportRulesHoldOnTheTLSPort() throws {
        let registry = try RegistryProcess(certificates.serverFlags + ["--tls-port", "0", "--header-timeout", "0.5",
                                                                      "--max-connections", "3"])
        let tls = try #require(registry.tlsPort)
        let script = """
            import socket, ssl, sys, time
            ctx = ssl.create_default_context(cafile=sys.argv[1])
            def open_tls():
                return ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[2]))), server_hostname="localhost")
            def answer(s):
                data = b""
                try:
                    while True:
                        chunk = s.recv(65536)
                        if not chunk: break
                        data += chunk
                        if b"\\r\\n\\r\\n" in data and (b"Connection: close" in data or b"connection: close" in data): break
                except (ssl.SSLError, OSError) as e:
                    pass
                return data
            # Headers over the limit: 431, through TLS.
            s = open_tls()
            s.sendall(b"GET /health HTTP/1.1\\r\\nHost: x\\r\\nX-Big: " + b"a" * 9000 + b"\\r\\n\\r\\n")
            print("big:", answer(s).split(b"\\r\\n")[0].decode(), flush=True)
            # Request smuggling framing refused: 400.
            s = open_tls()
            s.sendall(b"POST /register HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 5\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n")
            print("smuggle:", answer(s).split(b"\\r\\n")[0].decode(), flush=True)
            # Half a head, then silence: closed after --header-timeout.
            s = open_tls()
            s.sendall(b"GET /health HTTP/1.1\\r\\nHost: x\\r\\n")
            started = time.time()
            answer(s)
            print("slow closed after %.1f" % (time.time() - started), flush=True)
            # Over --max-connections: the fourth is closed.
            held = [open_tls() for i in range(3)]
            try:
                extra = open_tls()
                extra.sendall(b"GET /health HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
                print("extra:", answer(extra)[:12], flush=True)
            except (ssl.SSLError, OSError) as e:
                print("extra: refused", flush=True)
            """
        let run = try CommandRun.run("python3", ["-c", script, certificates.ca, String(tls)])
        #expect(run.stdout.contains("big: HTTP/1.1 431"), Comment(rawValue: run.stdout + run.stderr))
        // Refused by the framing check, as on the plain port (which the hostile-input tests cover).
        let smuggled = run.stdout.split(separator: "\n").first { $0.hasPrefix("smuggle:") } ?? ""
        #expect(smuggled.hasPrefix("smuggle: HTTP/1.1 4"), Comment(rawValue: run.stdout))
        let slow = run.stdout.split(separator: "\n").first { $0.hasPrefix("slow closed after") }.flatMap { Double($0.split(separator: " ").last!) }
        #expect(slow.map { $0 >= 0.4 && $0 < 3 } == true, Comment(rawValue: run.stdout))
        #expect(run.stdout.contains("extra: refused") || run.stdout.contains("extra: b''"), Comment(rawValue: run.stdout))
        let metrics = try registry.client().request("GET", "/metrics").text
        #expect(metrics.contains(#"registry_http_timeouts_total{phase="header"} 1"#))
        #expect(metrics.contains("registry_connections_refused_total 1"))
        // And the registry goes on serving.
        #expect(try curl("https://localhost:\(tls)/health", ["--cacert", certificates.ca]).status == 200)
    }

    @Test func portOffServesHTTPSOnlyAndBadSettingsStopTheStart() throws {
        let registry = try RegistryProcess(["--port", "off", "--tls-port", "0"] + certificates.serverFlags)
        #expect(registry.log.contains("(HTTPS only)"))
        #expect(registry.log.contains("port=off"))
        #expect(try curl("https://localhost:\(registry.port)/health", ["--cacert", certificates.ca]).status == 200)

        var outcome = try RegistryProcess.runToExit(["--tls-cert", certificates.path("server.pem")])
        #expect(outcome.status == 2)
        #expect(outcome.stderr.contains("--tls-cert needs --tls-key"))
        outcome = try RegistryProcess.runToExit(["--port", "off"])
        #expect(outcome.status == 2)
        #expect(outcome.stderr.contains("--port off leaves no listener"))
        outcome = try RegistryProcess.runToExit(["--tls-client-ca", certificates.ca])
        #expect(outcome.status == 2)
        outcome = try RegistryProcess.runToExit(["--tls-cert", certificates.path("missing.pem"), "--tls-key", certificates.path("server-key.pem"),
                                                 "--tls-port", "0", "--port", "0"])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("cannot use \(certificates.path("missing.pem")) as the server certificate"), Comment(rawValue: outcome.stderr))
        outcome = try RegistryProcess.runToExit(["--tls-cert", certificates.path("server.pem"), "--tls-key", certificates.path("client-ops-key.pem"),
                                                 "--tls-port", "0", "--port", "0"])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("does not belong to the certificate"), Comment(rawValue: outcome.stderr))
    }

    @Test func registryctlAndTheExampleServiceSpeakHTTPSWithClientCertificates() throws {
        let registry = try RegistryProcess(certificates.serverFlags + ["--tls-port", "0", "--tls-client-ca", certificates.ca])
        let https = "https://localhost:\(try #require(registry.tlsPort))"
        let ctl = RegistryProcess.binaryURL.deletingLastPathComponent().appendingPathComponent("registryctl").path
        let flags = ["--registry", https, "--cacert", certificates.ca, "--cert", certificates.path("client-payments.pem"),
                     "--key", certificates.path("client-payments-key.pem")]
        var run = try CommandRun.run(ctl, flags + ["register", "payment-api", "http://10.0.0.1:80"])
        #expect(run.status == 0, Comment(rawValue: run.stderr))
        run = try CommandRun.run(ctl, ["discover", "payment-api"], environment: [
            "REGISTRY_URL": https, "REGISTRY_CACERT": certificates.ca, "REGISTRY_CERT": certificates.path("client-payments.pem"),
            "REGISTRY_KEY": certificates.path("client-payments-key.pem")])
        #expect(run.status == 0)
        #expect(run.stdout.contains("10.0.0.1"))
        // What goes wrong is said: the CA, the client certificate, the name.
        run = try CommandRun.run(ctl, ["--registry", https, "health"])
        #expect(run.status == 3)
        #expect(run.stderr.contains("the server's certificate was refused"), Comment(rawValue: run.stderr))
        run = try CommandRun.run(ctl, ["--registry", https, "--cacert", certificates.ca, "health"])
        #expect(run.status == 3)
        #expect(run.stderr.contains("certificate required") || run.stderr.contains("give one its client CA signed with --cert and --key"),
                Comment(rawValue: run.stderr))
        run = try CommandRun.run(ctl, ["--registry", https, "--cacert", certificates.ca, "--cert", certificates.path("client-payments.pem"), "health"])
        #expect(run.status == 2)
        #expect(run.stderr.contains("give both"))
        // The example service registers, heartbeats and deregisters over mutual TLS.
        let service = Process()
        service.executableURL = RegistryProcess.binaryURL.deletingLastPathComponent().appendingPathComponent("example-service")
        service.arguments = ["payment-web", String(Int.random(in: 20_000...40_000))]
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("REGISTRY_") }
        environment.merge(["REGISTRY_URL": https, "REGISTRY_CACERT": certificates.ca, "REGISTRY_CERT": certificates.path("client-payments.pem"),
                           "REGISTRY_KEY": certificates.path("client-payments-key.pem"), "HEARTBEAT_INTERVAL": "0.2",
                           "SERVICE_ADDRESS": "http://10.7.7.7:80"]) { $1 }
        service.environment = environment
        service.standardOutput = Pipe()
        service.standardError = Pipe()
        try service.run()
        defer { if service.isRunning { kill(service.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(5)
        var seen = false
        while !seen, Date() < deadline {
            seen = (try? registry.client().request("GET", "/discover/payment-web").text.contains("10.7.7.7")) == true
            if !seen { usleep(50_000) }
        }
        #expect(seen)
        usleep(700_000)
        kill(service.processIdentifier, SIGTERM)
        service.waitUntilExit()
        #expect(service.terminationStatus == 0)
        #expect(try registry.client().request("GET", "/discover/payment-web").status == 404)
        let metrics = try registry.client().request("GET", "/metrics").text
        #expect(!metrics.contains("decode error"), "clients closing without close_notify are not refusals")
    }
}
