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
        /// With `tls`: a second client URL, https, beside the plain one the health checks use.
        public let secureClientPort: UInt16
        public var process: Process?
        public var clientURL: String { "http://127.0.0.1:\(clientPort)" }
        public var secureClientURL: String { "https://127.0.0.1:\(secureClientPort)" }
    }

    /// The members' certificate and key for their https client URLs, and, when set, the CA
    /// a client's certificate must chain to (`--client-cert-auth`).
    public struct TLSFiles: Sendable {
        public let certificate: String
        public let key: String
        public let clientCA: String?

        public init(certificate: String, key: String, clientCA: String? = nil) {
            self.certificate = certificate
            self.key = key
            self.clientCA = clientCA
        }
    }

    public private(set) var members: [Member]
    public let directory: URL
    private let token: String
    public let tls: TLSFiles?

    public static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") }

    /// Starts `size` members and waits until every one reports itself healthy.
    public init(size: Int = 3, tls: TLSFiles? = nil) throws {
        self.tls = tls
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("etcd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        token = "test-\(UUID().uuidString.prefix(8))"
        var members: [Member] = []
        for index in 0..<size {
            members.append(Member(name: "m\(index + 1)", clientPort: try Self.freePort(), peerPort: try Self.freePort(),
                                  secureClientPort: try Self.freePort(), process: nil))
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
    /// `https://127.0.0.1:A,…`: the members' TLS client URLs (with `tls`).
    public var secureEndpoints: String { members.map(\.secureClientURL).joined(separator: ",") }

    public func start(_ index: Int) throws {
        let member = members[index]
        let initial = members.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/etcd")
        var listen = member.clientURL
        var secure: [String] = []
        if let tls {
            listen += "," + member.secureClientURL
            secure = ["--cert-file", tls.certificate, "--key-file", tls.key]
            if let clientCA = tls.clientCA { secure += ["--client-cert-auth", "--trusted-ca-file", clientCA] }
        }
        process.arguments = secure + [
            "--name", member.name,
            "--data-dir", directory.appendingPathComponent(member.name).path,
            "--listen-client-urls", listen, "--advertise-client-urls", member.clientURL,
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

    /// etcd's authentication, through the gateway on the first member: a root user, and
    /// `user` with `password` and readwrite on the keys under `prefix` only; then auth on.
    public func enableAuth(user: String, password: String, prefix: String) throws {
        let port = members[0].clientPort
        func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
        var end = Array(prefix.utf8)
        end[end.count - 1] += 1
        let steps: [(String, String)] = [
            ("/v3/auth/user/add", #"{"name":"root","password":"root-\#(token)"}"#),
            ("/v3/auth/role/add", #"{"name":"root"}"#),
            ("/v3/auth/user/grant", #"{"user":"root","role":"root"}"#),
            ("/v3/auth/user/add", #"{"name":"\#(user)","password":"\#(password)"}"#),
            ("/v3/auth/role/add", #"{"name":"\#(user)"}"#),
            ("/v3/auth/role/grant", #"{"name":"\#(user)","perm":{"permType":"READWRITE","key":"\#(base64(prefix))","range_end":"\#(Data(end).base64EncodedString())"}}"#),
            ("/v3/auth/user/grant", #"{"user":"\#(user)","role":"\#(user)"}"#),
            ("/v3/auth/enable", "{}"),
        ]
        for (path, body) in steps {
            let answer = try Self.post(port: port, path: path, body: body)
            guard answer.contains("\"header\"") else { throw Failure(message: "etcd refused \(path): \(answer)") }
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
        try exchange(port: port, request: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    }

    /// A blocking POST of a JSON body, as `get`.
    public static func post(port: UInt16, path: String, body: String) throws -> String {
        try exchange(port: port, request: "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
    }

    private static func exchange(port: UInt16, request text: String) throws -> String {
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
        let request = Array(text.utf8)
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
