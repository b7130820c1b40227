#if canImport(Glibc)
import Glibc
#endif
import CLibevent

/// Who holds a port this registry could not bind, for the start-up error: asked once, with
/// a blocking `GET /ready` of at most a second, before the loop runs.
///
/// Another registry answers `/ready` with `ready`, or with `draining` while it is in its
/// shutdown grace after SIGTERM (it keeps the port until it exits); anything else that
/// answers HTTP, or nothing at all, is another program.
enum PortHolder {
    static func describe(host: String, port: UInt16) -> String {
        // A wildcard address is reached on loopback; a named one as it is.
        let target = host == "0.0.0.0" || host == "::" || host.isEmpty ? "127.0.0.1" : host
        guard let answer = ask(host: target, port: port) else {
            return "another program holds that port; stop it, or choose another --port or --host"
        }
        if answer.hasPrefix("HTTP/1.") {
            if answer.contains("\"status\":\"draining\"") {
                return "another registry is draining there (it was sent SIGTERM, and keeps the port until it exits, after its "
                    + "--shutdown-grace); start this one once it has exited, or choose another --port"
            }
            if answer.contains("\"status\":\"ready\"") {
                return "another registry is serving there; stop it first, or choose another --port or --host"
            }
            return "another HTTP server (not a registry) holds that port; stop it, or choose another --port or --host"
        }
        return "another program holds that port; stop it, or choose another --port or --host"
    }

    /// The first bytes of the answer to `GET /ready`, or nil when nothing answered.
    private static func ask(host: String, port: UInt16) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { return nil }
        defer { freeaddrinfo(result) }
        let socket = Glibc.socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return nil }
        defer { close(socket) }
        var second = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &second, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &second, socklen_t(MemoryLayout<timeval>.size))
        guard connect(socket, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else { return nil }
        let request = Array("GET /ready HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
        guard send(socket, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return nil }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while answer.count < 4096 {
            let count = recv(socket, &chunk, chunk.count, 0)
            if count <= 0 { break }
            answer += chunk[..<count]
        }
        return answer.isEmpty ? nil : String(decoding: answer, as: UTF8.self)
    }
}
