import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The example service against a live registry: it serves, registers, heartbeats, registers
/// again when forgotten, and deregisters on SIGTERM; `demo` resolves every service.
@Suite struct ExampleServiceTests {
    static var binaryURL: URL {
        RegistryProcess.binaryURL.deletingLastPathComponent().appendingPathComponent("example-service")
    }

    /// A socket listening on 127.0.0.1 at a port of the kernel's choosing (it accepts nothing
    /// unless the caller does), and that port.
    static func listeningSocket() throws -> (socket: Int32, port: UInt16) {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(socket, pointer, length) == 0 && listen(socket, 8) == 0 && getsockname(socket, pointer, &length) == 0
            }
        }
        guard bound else {
            close(socket)
            throw TestHTTPClient.Failure.connect(errno)
        }
        return (socket, UInt16(bigEndian: address.sin_port))
    }

    /// A port nothing listens on now (bound to 0 and released).
    static func freePort() throws -> UInt16 {
        let (socket, port) = try listeningSocket()
        close(socket)
        return port
    }

    /// Starts `example-service` with `arguments` against the registry on `registryPort`;
    /// its stdout is the returned pipe. The caller stops it.
    static func launch(_ arguments: [String], registryPort: UInt16, heartbeatInterval: String = "10") throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = binaryURL
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["REGISTRY_URL"] = "http://127.0.0.1:\(registryPort)"
        environment["HEARTBEAT_INTERVAL"] = heartbeatInterval
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        return (process, out)
    }

    @Test func joinsServesRejoinsAndLeaves() throws {
        let registry = try RegistryProcess()
        let port = try Self.freePort()
        let (process, out) = try Self.launch(["orders", String(port)], registryPort: registry.port, heartbeatInterval: "0.2")
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        func listed() throws -> [[String: Any]] {
            let reply = try registry.client().request("GET", "/discover/orders")
            return reply.status == 200 ? reply.json["instances"] as? [[String: Any]] ?? [] : []
        }
        var deadline = Date().addingTimeInterval(5)
        while try listed().isEmpty && Date() < deadline { usleep(50_000) }
        let instance = try #require(try listed().first)
        #expect(instance["address"] as? String == "http://localhost:\(port)")
        #expect(instance["tags"] as? [String] == ["example"])

        let own = try TestHTTPClient(port: port).request("GET", "/")
        #expect(own.status == 200)
        #expect(own.json["message"] as? String == "Hello from orders")

        #expect(try registry.client().request("POST", "/deregister", body: #"{"service":"orders","address":"http://localhost:\#(port)"}"#).status == 200)
        deadline = Date().addingTimeInterval(5)
        while try listed().isEmpty && Date() < deadline { usleep(50_000) }
        #expect(try listed().count == 1, "not registered again")

        let (demo, demoOut) = try Self.launch(["demo"], registryPort: registry.port)
        let shown = String(decoding: demoOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        demo.waitUntilExit()
        #expect(demo.terminationStatus == 0)
        #expect(shown.contains("healthy"))
        #expect(shown.contains("orders: 1 instance(s), next → http://localhost:\(port)"), "\(shown)")

        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(try listed().isEmpty)
        let log = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("unknown_to_registry"))
        #expect(log.contains("deregistered: Service orders at http://localhost:\(port) deregistered"))
    }

    /// Loopback by default (a local demo exposes nothing), `--host` for a container; a stop
    /// after the registry forgot the instance says so instead of reading like a success.
    @Test func listensOnLoopbackUnlessToldAndSaysWhenItWasAlreadyGone() throws {
        let registry = try RegistryProcess(["--heartbeat-timeout", "0.3"])
        let port = try Self.freePort()
        let (process, out) = try Self.launch(["--host", "127.0.0.1", "quiet", String(port)], registryPort: registry.port,
                                             heartbeatInterval: "60")
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(5)
        var served = false
        while !served && Date() < deadline {
            served = (try? TestHTTPClient(port: port).request("GET", "/health").status) == 200
            if !served { usleep(50_000) }
        }
        #expect(served)
        // Its one registration expires (no heartbeat within 0.3 s), then it is stopped.
        usleep(800_000)
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let log = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("starting: quiet on 127.0.0.1:\(port)"), "\(log)")
        #expect(log.contains("already_gone: the registry no longer had quiet at http://localhost:\(port)"), "\(log)")
        #expect(!log.contains("deregistered:"))

        let usage = Process()
        usage.executableURL = Self.binaryURL
        usage.arguments = ["--host"]
        usage.standardError = Pipe()
        try usage.run()
        usage.waitUntilExit()
        #expect(usage.terminationStatus == 2)
    }
}
