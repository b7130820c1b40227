import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The binary run the way the image and the StatefulSet run it: no flags, the manifest's
/// environment, a non-root user, a working directory it cannot write, and its data in a
/// separate directory. (No container engine runs on the build machines.)
@Suite final class LiveContainerTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let scratch: URL

    init() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("registry-container-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: scratch)
    }

    /// The registry container's `env` entries and `runAsUser` from docker/k8s/registry.yaml.
    static func manifest(_ path: String = "docker/k8s/registry.yaml") throws -> (environment: [String: String], user: Int) {
        let text = try String(contentsOf: repository.appendingPathComponent(path), encoding: .utf8)
        var environment: [String: String] = [:]
        var user = 0
        var pendingName: String?
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("- name: REGISTRY_") {
                pendingName = String(line.dropFirst("- name: ".count))
            } else if let name = pendingName, line.hasPrefix("value: ") {
                environment[name] = line.dropFirst("value: ".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                pendingName = nil
            } else if line.hasPrefix("runAsUser: "), user == 0 {
                user = Int(line.dropFirst("runAsUser: ".count)) ?? 0
            }
        }
        return (environment, user)
    }

    /// The Secrets the manifest mounts under /etc/registry, made by docker/make-secrets.sh
    /// (as deploy-minikube.sh makes them) in the scratch folder: the environment's paths are
    /// pointed there, and the free ports stand in for 5443. Returns the folder.
    @discardableResult
    private func mapSecrets(_ environment: inout [String: String]) throws -> URL {
        let secrets = scratch.appendingPathComponent("secrets")
        if !FileManager.default.fileExists(atPath: secrets.appendingPathComponent("acl.json").path) {
            let made = try CommandRun.run("bash", [Self.repository.appendingPathComponent("docker/make-secrets.sh").path, secrets.path])
            #expect(made.status == 0, Comment(rawValue: made.stderr))
            // The registry runs as uid 10001 here: it must reach the files, as the kubelet lets it.
            chmod(secrets.path, 0o755)
        }
        let files = ["/etc/registry/tls/tls.crt": "server.pem", "/etc/registry/tls/tls.key": "server-key.pem",
                     "/etc/registry/acl/acl.json": "acl.json", "/etc/registry/replica/token": "replica.token",
                     "/etc/registry/tls/ca.crt": "ca.pem"]
        for (name, value) in environment {
            if let file = files[value] { environment[name] = secrets.appendingPathComponent(file).path }
        }
        if environment["REGISTRY_TLS_PORT"] != nil { environment["REGISTRY_TLS_PORT"] = "0" }
        return secrets
    }

    /// Starts the registry as the StatefulSet would, on loopback and a free port instead of
    /// 0.0.0.0:5001, with its data in `data`.
    private func start(data: URL, environment extra: [String: String] = [:]) throws -> RegistryProcess {
        let (manifestEnvironment, user) = try Self.manifest()
        #expect(manifestEnvironment["REGISTRY_DATA_DIR"] == "/data")
        #expect(user == 10001)
        var environment = manifestEnvironment
        environment["REGISTRY_DATA_DIR"] = data.path
        environment["REGISTRY_HOST"] = "127.0.0.1"
        environment["REGISTRY_PORT"] = "0"
        try mapSecrets(&environment)
        environment.merge(extra) { $1 }
        // A working directory nobody may write, as under readOnlyRootFilesystem.
        let workingDirectory = scratch.appendingPathComponent("root")
        try FileManager.default.createDirectory(at: workingDirectory, withIntermediateDirectories: true)
        chmod(workingDirectory.path, 0o555)
        var wrapper: [String] = []
        if getuid() == 0 {
            // As the image's user: setpriv drops to it (and every capability) before exec.
            chown(data.path, uid_t(user), gid_t(user))
            chmod(scratch.path, 0o755)
            wrapper = ["/usr/bin/setpriv", "--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--inh-caps=-all", "--"]
        }
        return try RegistryProcess([], environment: environment, wrapper: wrapper, bare: true, directory: workingDirectory)
    }

    @Test func runsAsTheManifestSaysAndKeepsItsData() throws {
        let data = scratch.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        do {
            let registry = try start(data: data)
            let http = try registry.client()
            #expect(try http.request("GET", "/ready").status == 200)
            // Tokens and TLS from the Secrets: writes need the services' token, /metrics the operator's.
            let secrets = scratch.appendingPathComponent("secrets")
            let services = try String(contentsOf: secrets.appendingPathComponent("services.token"), encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let ops = try String(contentsOf: secrets.appendingPathComponent("ops.token"), encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let order = #"{"service":"orders","address":"http://10.0.0.7:8080"}"#
            #expect(try http.request("POST", "/register", body: order).status == 401)
            #expect(try http.request("POST", "/register", body: order, headers: ["Authorization": "Bearer \(services)"]).status == 201)
            #expect(try http.request("GET", "/discover/orders").status == 200, "anonymous reads, as the ACL file says")
            #expect(try http.request("GET", "/metrics", headers: ["Authorization": "Bearer \(ops)"]).text.contains("registry_persistence_enabled 1"))
            let tls = try #require(registry.tlsPort, "HTTPS from the TLS Secret: \(registry.log)")
            let https = try CommandRun.run("curl", ["-sS", "--cacert", secrets.appendingPathComponent("ca.pem").path,
                                                    "--resolve", "service-registry:\(tls):127.0.0.1", "https://service-registry:\(tls)/health"])
            #expect(https.stdout.contains("healthy"), "the certificate is for the Service's name: \(https.stderr)")
            // Every log line is JSON, as REGISTRY_LOG_FORMAT=json asks.
            for line in registry.log.split(separator: "\n") {
                #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any], "\(line)")
            }
            if getuid() == 0 {
                var status = stat()
                stat(data.appendingPathComponent("LOCK").path, &status)
                #expect(status.st_uid == 10001, "the data was written as the image's user")
            }
            // Kubernetes' SIGTERM: /ready turns 503 for the manifest's grace, then a clean exit.
            kill(registry.process.processIdentifier, SIGTERM)
            #expect(registry.waitForLog { $0.contains("\"event\":\"draining\"") })
            #expect(try http.request("GET", "/ready").status == 503)
            #expect(registry.stop(signal: 0, timeout: 10) == 0)
        }
        let again = try start(data: data)
        let listed = try again.client().request("GET", "/discover/orders")
        #expect(listed.status == 200)
        #expect(listed.text.contains("http://10.0.0.7:8080"))
    }

    /// The cluster StatefulSet's environment over the image's (which sets REGISTRY_DATA_DIR
    /// to /data: the manifest empties it), against a real etcd: the replica starts, leads
    /// (it is alone) and serves.
    @Test(.enabled(if: EtcdCluster.isInstalled, "etcd is not installed")) func runsAsTheClusterManifestSays() throws {
        let etcd = try EtcdCluster(size: 1)
        let (manifestEnvironment, user) = try Self.manifest("docker/k8s-cluster/registry.yaml")
        #expect(user == 10001)
        #expect(manifestEnvironment["REGISTRY_DATA_DIR"] == "")
        #expect(manifestEnvironment["REGISTRY_ETCD"]?.hasPrefix("http://etcd-0.etcd:2379,") == true)
        var environment = ["REGISTRY_DATA_DIR": "/data", "REGISTRY_FSYNC": "everysec"]
        environment.merge(manifestEnvironment) { $1 }
        environment["REGISTRY_ETCD"] = etcd.endpoints
        environment["REGISTRY_HOST"] = "127.0.0.1"
        environment["REGISTRY_PORT"] = "0"
        environment["REGISTRY_REPLICA_NAME"] = "service-registry-0"
        environment["REGISTRY_ADVERTISE_URL"] = "http://127.0.0.1:1"
        try mapSecrets(&environment)
        let workingDirectory = scratch.appendingPathComponent("root")
        try FileManager.default.createDirectory(at: workingDirectory, withIntermediateDirectories: true)
        chmod(workingDirectory.path, 0o555)
        let registry = try RegistryProcess([], environment: environment, bare: true, directory: workingDirectory)
        let http = try registry.client()
        let deadline = Date().addingTimeInterval(10)
        while (try? http.request("GET", "/ready").status) != 200 && Date() < deadline { usleep(100_000) }
        #expect(try http.request("GET", "/ready").status == 200, "\(registry.log)")
        let services = try String(contentsOf: scratch.appendingPathComponent("secrets/services.token"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try http.request("POST", "/register", body: #"{"service":"orders","address":"http://10.0.0.7:8080"}"#,
                                 headers: ["Authorization": "Bearer \(services)"]).status == 201)
        #expect(try http.request("GET", "/metrics").status == 401, "the ACL file from the Secret is in force")
        #expect(registry.tlsPort != nil, "HTTPS from the TLS Secret")
        #expect(registry.waitForLog { $0.contains("\"event\":\"leading\"") }, "\(registry.log)")
    }

    @Test func anUnwritableDataDirectoryIsAClearError() throws {
        let data = scratch.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        chmod(data.path, 0o555)
        guard getuid() == 0 || access(data.path, W_OK) != 0 else { return }
        let (environment, user) = try Self.manifest()
        var merged = environment
        merged["REGISTRY_DATA_DIR"] = data.path
        merged["REGISTRY_HOST"] = "127.0.0.1"
        merged["REGISTRY_PORT"] = "0"
        try mapSecrets(&merged)
        var wrapper: [String] = []
        if getuid() == 0 {
            chown(data.path, 0, 0)
            wrapper = ["/usr/bin/setpriv", "--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--"]
        }
        let (status, message) = try RegistryProcess.runToExit([], environment: merged, wrapper: wrapper, bare: true)
        #expect(status == 1)
        #expect(message.contains("cannot create \(data.path)/LOCK: Permission denied"), "\(message)")
        #expect(message.contains("make it writable for uid \(getuid() == 0 ? user : Int(getuid()))"), "\(message)")
    }
}
