import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A deliberately small HTTP/1.1 client over a raw socket, so that tests can send exactly
/// the bytes they mean (garbage included) and reuse one connection for keep-alive.
final class TestHTTPClient {
    struct Reply {
        let status: Int
        let headers: [String: String]
        let body: Data
        /// The status line as received: anything before `HTTP/` is a previous reply's
        /// stray bytes.
        let statusLine: String

        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
        }
        func header(_ name: String) -> String? { headers[name.lowercased()] }
    }

    enum Failure: Error, CustomStringConvertible {
        case connect(Int32), closed, timeout, malformed(String)
        var description: String {
            switch self {
            case .connect(let code): return "connect failed: \(String(cString: strerror(code)))"
            case .closed: return "the server closed the connection"
            case .timeout: return "no answer in time"
            case .malformed(let why): return "malformed response: \(why)"
            }
        }
    }

    private let socket: Int32
    private let port: UInt16
    private var buffer = Data()

    /// `receiveBufferBytes` shrinks the socket's receive buffer before connecting (which is
    /// when TCP fixes its window), so that a large reply cannot be written in one go.
    init(port: UInt16, timeout: Double = 5, receiveBufferBytes: Int32? = nil) throws {
        self.port = port
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var bytes = receiveBufferBytes {
            setsockopt(socket, SOL_SOCKET, SO_RCVBUF, &bytes, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var wait = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        // No close here: the object is whole, so a throw runs `deinit`, which closes the
        // socket. Closing it here too closed whatever descriptor another test had been given
        // the same number meanwhile (a registryctl pipe read failed with EBADF in CI).
        guard result == 0 else { throw Failure.connect(errno) }
    }

    deinit {
        close(socket)
    }

    /// Sends raw bytes as they are.
    func send(_ bytes: Data) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw Failure.closed }
            offset += written
        }
    }

    func send(_ text: String) throws {
        try send(Data(text.utf8))
    }

    /// Sends one well-formed request and reads its reply.
    func request(_ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]) throws -> Reply {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.utf8.count)\r\n" }
        head += "\r\n"
        try send(Data(head.utf8) + Data((body ?? "").utf8))
        return try readReply(method: method)
    }

    /// Reads one response: status line, headers, and a Content-Length body.
    func readReply(method: String = "GET") throws -> Reply {
        let separator = Data("\r\n\r\n".utf8)
        var headEnd = buffer.range(of: separator)
        while headEnd == nil {
            try fill()
            headEnd = buffer.range(of: separator)
        }
        let head = String(decoding: buffer[buffer.startIndex..<headEnd!.lowerBound], as: UTF8.self)
        buffer = Data(buffer[headEnd!.upperBound...])
        var lines = head.components(separatedBy: "\r\n")
        let firstLine = lines.removeFirst()
        let statusLine = firstLine.split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw Failure.malformed(head) }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = method == "HEAD" ? 0 : Int(headers["content-length"] ?? "0") ?? 0
        while buffer.count < length { try fill() }
        let body = Data(buffer.prefix(length))
        buffer = Data(buffer.dropFirst(length))
        return Reply(status: status, headers: headers, body: body, statusLine: firstLine)
    }

    /// Whatever bytes arrive next (buffered first), for streams that are not one response.
    func receiveSome() throws -> Data {
        if buffer.isEmpty { try fill() }
        defer { buffer = Data() }
        return buffer
    }

    /// Everything the server sends until it closes the connection, or nil if it does not
    /// close before `timeout` passes: for replies delimited by the close (HTTP/1.0).
    func readUntilClose() -> Data? {
        guard waitForClose() else { return nil }
        defer { buffer = Data() }
        return buffer
    }

    /// True when the server closes the connection (EOF or reset) before `timeout` passes.
    func waitForClose() -> Bool {
        do {
            while true { try fill() }
        } catch Failure.closed {
            return true
        } catch {
            return false
        }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = recv(socket, &chunk, chunk.count, 0)
        if count > 0 {
            buffer.append(contentsOf: chunk[0..<count])
        } else if count == 0 || errno == ECONNRESET {
            throw Failure.closed
        } else if errno == EAGAIN || errno == EWOULDBLOCK {
            throw Failure.timeout
        } else if errno == EINTR {
            return
        } else {
            throw Failure.closed
        }
    }
}
