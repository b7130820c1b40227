import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real etcd cluster (Debian's etcd-server, which `scripts/install-test-tools.sh`
/// installs) on loopback ports, each member with its own data directory under a temporary
/// folder; every member is killed when the cluster is released.
public final class EtcdCluster: @unchecked Sendable {
    public struct Member {
        public let name: String
        public let clientPort: UInt16
        public let peerPort: UInt16
        public var process: Process?
        public var clientURL: String { "http://127.0.0.1:\(clientPort)" }
    }

    public private(set) var members: [Member]
    public let directory: URL
    private let token: String

    public static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") }

    /// Starts `size` members and waits until every one reports itself healthy.
    public init(size: Int = 3) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("etcd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        token = "test-\(UUID().uuidString.prefix(8))"
        var members: [Member] = []
        for index in 0..<size {
            members.append(Member(name: "m\(index + 1)", clientPort: try Self.freePort(), peerPort: try Self.freePort(), process: nil))
        }
        self.members = members
        for index in members.indices { try start(index) }
        try waitUntilHealthy(members.indices.map { $0 })
    }

    deinit {
        for member in members { member.process.map(Self.kill) }
        try? FileManager.default.removeItem(at: directory)
    }

    /// `http://127.0.0.1:A,http://127.0.0.1:B,…`, as `--etcd` takes it.
    public var endpoints: String { members.map(\.clientURL).joined(separator: ",") }

    public func start(_ index: Int) throws {
        let member = members[index]
        let initial = members.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/etcd")
        process.arguments = [
            "--name", member.name,
            "--data-dir", directory.appendingPathComponent(member.name).path,
            "--listen-client-urls", member.clientURL, "--advertise-client-urls", member.clientURL,
            "--listen-peer-urls", "http://127.0.0.1:\(member.peerPort)",
            "--initial-advertise-peer-urls", "http://127.0.0.1:\(member.peerPort)",
            "--initial-cluster", initial, "--initial-cluster-token", token, "--initial-cluster-state", "new",
            "--experimental-watch-progress-notify-interval", "1s",
            "--logger", "zap", "--log-level", "error",
            "--log-outputs", directory.appendingPathComponent("\(member.name).log").path,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        members[index].process = process
    }

    /// SIGKILL, as a crash would.
    public func kill(_ index: Int) {
        guard let process = members[index].process else { return }
        Self.kill(process)
        members[index].process = nil
    }

    public func restart(_ index: Int) throws {
        kill(index)
        try start(index)
    }

    public func waitUntilHealthy(_ indices: [Int], timeout: TimeInterval = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        for index in indices {
            while !isHealthy(index) {
                if Date() > deadline {
                    let log = (try? String(contentsOf: directory.appendingPathComponent("\(members[index].name).log"), encoding: .utf8)) ?? ""
                    throw Failure(message: "etcd member \(members[index].name) is not healthy after \(Int(timeout)) s: \(log.suffix(2000))")
                }
                usleep(100_000)
            }
        }
    }

    /// `/health` answers `"health":"true"` only while the member has a leader.
    public func isHealthy(_ index: Int) -> Bool {
        guard let reply = try? Self.get(port: members[index].clientPort, path: "/health") else { return false }
        return reply.contains("\"health\":\"true\"")
    }

    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
        public init(message: String) { self.message = message }
    }

    static func kill(_ process: Process) {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// A port nothing listens on now (bound to 0 and released).
    public static func freePort() throws -> UInt16 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(socket, pointer, length) == 0 && getsockname(socket, pointer, &length) == 0
            }
        }
        guard bound else { throw Failure(message: "cannot bind a loopback port: \(String(cString: strerror(errno)))") }
        return UInt16(bigEndian: address.sin_port)
    }

    /// A blocking GET with a 2 s timeout: the whole answer, head and body.
    public static func get(port: UInt16, path: String) throws -> String {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var wait = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(message: "connect failed") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        guard send(socket, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { throw Failure(message: "send failed") }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(socket, &chunk, chunk.count, 0)
            if count <= 0 { break }
            answer += chunk[..<count]
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
