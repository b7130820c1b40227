#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import JSON
import Registry

/// `--access-log` (and `--log-level debug`): one line per answered request, in the log's
/// format, whatever the log level:
///
///     … INFO request method=GET target=/discover/api?tag=v2 status=200 bytes=412 duration_ms=0.081 client=127.0.0.1:50122
///     … INFO request method=GET target=/discover/api?index=7 status=200 bytes=412 duration_ms=30012.4 client=… held_ms=30012.4 end=timeout
///
/// A held request (a blocking query, a stream) is logged once, when it ends, with how long
/// it was held and why it ended (`AccessLog.End`). A long-poll whose client left before the
/// answer is logged with status 499, nginx's mark for "the client closed the connection
/// first": nothing was sent.
final class AccessLog {
    /// For answers made outside the listener's callback: libevent's own error replies and
    /// the transport's direct ones (408, 503 at the connection limit). Set at start-up when
    /// the access log is on; only the loop's thread uses it.
    nonisolated(unsafe) static var current: AccessLog?

    /// Why a held request ended.
    enum End: String {
        /// What it waited on changed (a long-poll's answer).
        case change
        /// Its wait passed.
        case timeout
        /// The client closed the connection.
        case clientGone = "client_gone"
        /// The client sent another request on the held connection: the held one is answered
        /// so that the next can be read.
        case clientSentMore = "client_sent_more"
        /// The registry is stopping.
        case shutdown
        /// The ACL file was reloaded: held requests and streams end, and come back under the
        /// new rules (a stream's client reconnects with its last event id).
        case aclReloaded = "acl_reloaded"
        /// libevent closed the connection (a write failed, or stalled past `--idle-timeout`).
        case connectionClosed = "connection_closed"
        /// A `HEAD` of a stream: headers only.
        case head
    }

    /// What is known of a request when it arrives, kept until it is answered (a class, so
    /// that a held request carries one reference, and none when the log is off).
    final class Entry {
        let method: String
        let target: String
        let client: String
        let start: Instant
        /// A stream's events so far.
        var bytes = 0

        init(method: String, target: String, client: String, start: Instant) {
            self.method = method
            self.target = target
            self.client = client
            self.start = start
        }
    }

    /// Targets longer than this are cut (with `…`): a log line stays readable.
    static let targetLimit = 512

    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    static func entry(_ request: UnsafeMutablePointer<evhttp_request>, start: Instant) -> Entry {
        let method = HTTPMethod(command: evhttp_request_get_command(request))?.name ?? "-"
        var target = evhttp_request_get_uri(request).map { String(cString: $0) } ?? "-"
        target = redactingTokens(target)
        if target.utf8.count > targetLimit { target = String(decoding: target.utf8.prefix(targetLimit), as: UTF8.self) + "…" }
        return Entry(method: method, target: target, client: client(of: request), start: start)
    }

    /// The target with the value of a `token=` query parameter (Consul's way of sending a
    /// token) replaced: a token is never written to a log.
    static func redactingTokens(_ target: String) -> String {
        guard let question = target.firstIndex(of: "?"), target[question...].contains("token=") else { return target }
        let query = target[target.index(after: question)...].split(separator: "&", omittingEmptySubsequences: false).map { pair in
            pair.hasPrefix("token=") ? "token=(hidden)" : String(pair)
        }
        return String(target[...question]) + query.joined(separator: "&")
    }

    /// `address:port` of the request's peer, with brackets around an IPv6 address.
    static func client(of request: UnsafeMutablePointer<evhttp_request>) -> String {
        guard let peer = Peer.of(request) else { return "-" }
        return peer.host.contains(":") ? "[\(peer.host)]:\(peer.port)" : "\(peer.host):\(peer.port)"
    }

    /// Logs an answered request: `bytes` is the body sent (all of a stream's events); `end`,
    /// for a held request, why it ended (it was held from its start); `error`, for a refused
    /// one, the message the client got, so that its 400s can be understood from the log alone.
    func answered(_ entry: Entry, status: Int32, bytes: Int, now: Instant, end: End? = nil, error: String? = nil) {
        let duration = Milliseconds(now.duration(since: entry.start))
        var fields: [(key: String, value: any LogValue)] = [
            ("method", entry.method), ("target", entry.target), ("status", Int(status)), ("bytes", bytes),
            ("duration_ms", duration), ("client", entry.client),
        ]
        if let end { fields += [("held_ms", duration), ("end", end.rawValue)] }
        if let error { fields.append(("error", Self.clipped(error))) }
        logger.always(.info, "request", fields)
    }

    private static func clipped(_ text: String) -> String {
        text.utf8.count <= 200 ? text : String(decoding: text.utf8.prefix(200), as: UTF8.self) + "…"
    }

    /// An answer libevent made itself (a body over the limit, a request it could not parse,
    /// a framing rule broken): its start is not known, so no duration is given.
    func answeredByLibevent(_ request: UnsafeMutablePointer<evhttp_request>, status: Int32, bytes: Int) {
        let entry = Self.entry(request, start: Clock.monotonicNow())
        logger.always(.info, "request", [
            ("method", entry.method), ("target", entry.target), ("status", Int(status)), ("bytes", bytes), ("client", entry.client),
        ])
    }

    /// An answer the transport wrote itself, before any request was read whole (a timed-out
    /// head, a connection over the limit): no method, target or duration to show.
    func answeredDirectly(status: Int, bytes: Int, socket: Int32) {
        logger.always(.info, "request", [
            ("method", "-"), ("target", "-"), ("status", status), ("bytes", bytes), ("client", Self.peer(of: socket)),
        ])
    }

    /// The socket's peer as `address:port`, numeric, for either address family.
    private static func peer(of socket: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                getpeername(socket, address, &length) == 0
                    && getnameinfo(address, length, &host, socklen_t(host.count), &service, socklen_t(service.count),
                                   NI_NUMERICHOST | NI_NUMERICSERV) == 0
            }
        }
        guard named else { return "-" }
        let address = host.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let port = service.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}

/// A duration as milliseconds with three decimals: a number in both formats.
struct Milliseconds: LogValue {
    let text: String

    init(_ duration: Duration) {
        let micros = max(0, duration.wholeNanoseconds / 1000)
        let fraction = String(micros % 1000)
        text = "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    func appendText(to line: inout String) { line += text }
    func appendJSON(to writer: inout JSONWriter) { writer.raw(text) }
}
