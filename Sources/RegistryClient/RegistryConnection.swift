#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import JSON
import TLS

/// One keep-alive HTTP connection to a registry, on libevent's HTTP client.
///
/// Given several URLs (the replicas of a cluster, `REGISTRY_URL=http://a:5001,http://b:5001`),
/// a request that finds its registry unreachable, or answered 503 (draining, no etcd
/// quorum, loading), moves to the next one, each tried once per request; later requests
/// start from the one that answered. A stream moves only when it could not connect.
///
/// Two ways to use it:
/// - `call(_:_:body:)` sends a request and waits for the answer, running a private event
///   base (for command-line tools);
/// - `send(_:_:body:completion:)` on a connection made with the caller's event base, whose
///   loop the caller runs (for services that serve HTTP themselves).
public final class RegistryConnection {
    public enum Method: Sendable {
        case get, post

        var command: evhttp_cmd_type { self == .get ? EVHTTP_REQ_GET : EVHTTP_REQ_POST }
    }

    /// A complete answer from the registry, whatever its status.
    public struct Reply: Sendable {
        public let status: Int
        public let headers: [(name: String, value: String)]
        public let body: [UInt8]

        public var text: String { String(decoding: body, as: UTF8.self) }
        public var json: JSONValue? { try? JSONParser.parse(body) }

        /// The `message` of a JSON answer (every write's and every error's), if any.
        public var message: String? {
            if case .string(let message)? = json?[member: "message"] { return message }
            return nil
        }

        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    /// The request got no answer.
    public struct Failure: Error, Equatable, Sendable {
        /// `notARegistry`: something answered HTTP, but not as a registry does (no JSON).
        public enum Kind: Sendable { case unreachable, timedOut, broken, notARegistry }
        public let kind: Kind
        public let message: String
    }

    /// The registry requests go to now.
    public var url: RegistryURL { urls[current] }
    public let urls: [RegistryURL]
    private var current = 0
    private let base: OpaquePointer
    private let ownsBase: Bool
    private let timeout: Duration
    /// One kept-alive connection per URL, made when first needed.
    private var connections: [OpaquePointer?]
    /// libevent's asynchronous resolver, for a caller whose loop must never block; nil
    /// resolves host names with a blocking call (fine for a command-line tool).
    private let dns: OpaquePointer?
    /// Sent with every request as `Authorization: Bearer …` when set: a registry with an
    /// ACL file (`--acl-file`) grants what the token may do.
    public var token: String?
    /// How `https://` URLs are trusted and which client certificate they present; the
    /// system's CAs and none when not set (made at the first https request).
    public var tls: TLSClientContext?
    /// The kept-alive connections libevent has closed: an https one cannot be reconnected
    /// (its TLS session is over), so the next request makes a new one.
    private var closed: Set<OpaquePointer> = []

    /// A connection with its own event base, for `call` and `follow`.
    public convenience init(url: RegistryURL, timeout: Duration = .seconds(5)) {
        self.init(urls: [url], timeout: timeout)
    }

    public init(urls: [RegistryURL], timeout: Duration = .seconds(5)) {
        precondition(!urls.isEmpty, "a registry connection needs a URL")
        self.urls = urls
        connections = Array(repeating: nil, count: urls.count)
        self.timeout = timeout
        let config = event_config_new()
        event_config_set_flag(config, Int32(EVENT_BASE_FLAG_NOLOCK.rawValue))
        guard let base = event_base_new_with_config(config) else { fatalError("cannot create a libevent event base") }
        event_config_free(config)
        self.base = base
        ownsBase = true
        dns = nil
    }

    /// A connection on the caller's event base, for `send`; the caller runs the loop.
    public convenience init(url: RegistryURL, base: OpaquePointer, dns: OpaquePointer? = nil, timeout: Duration = .seconds(5)) {
        self.init(urls: [url], base: base, dns: dns, timeout: timeout)
    }

    public init(urls: [RegistryURL], base: OpaquePointer, dns: OpaquePointer? = nil, timeout: Duration = .seconds(5)) {
        precondition(!urls.isEmpty, "a registry connection needs a URL")
        self.urls = urls
        connections = Array(repeating: nil, count: urls.count)
        self.base = base
        self.dns = dns
        self.timeout = timeout
        ownsBase = false
    }

    deinit {
        for case let connection? in connections { evhttp_connection_free(connection) }
        if ownsBase { event_base_free(base) }
    }

    // MARK: Asynchronous

    /// Sends a request; `completion` runs on the event loop with the answer or the failure.
    /// With `onChunk`, each piece of the body is handed over as it arrives (a stream) and
    /// the reply's body stays empty.
    public func send(_ method: Method, _ path: String, body: [UInt8]? = nil, streaming: Bool = false,
                     onChunk: (([UInt8]) -> Void)? = nil, completion: @escaping (Result<Reply, Failure>) -> Void) {
        attempt(method, path, body: body, streaming: streaming, onChunk: onChunk, triesLeft: urls.count, completion: completion)
    }

    private func attempt(_ method: Method, _ path: String, body: [UInt8]?, streaming: Bool, onChunk: (([UInt8]) -> Void)?,
                         triesLeft: Int, completion: @escaping (Result<Reply, Failure>) -> Void) {
        let tried = current
        sendOnce(method, path, body: body, streaming: streaming, onChunk: onChunk) { [weak self] result in
            guard let self, triesLeft > 1, self.shouldMoveOn(result, streaming: streaming) else {
                completion(result)
                return
            }
            if current == tried { moveToNext() }
            attempt(method, path, body: body, streaming: streaming, onChunk: onChunk, triesLeft: triesLeft - 1, completion: completion)
        }
    }

    /// An unreachable registry, or one that answered 503; a stream only when it could not connect.
    private func shouldMoveOn(_ result: Result<Reply, Failure>, streaming: Bool) -> Bool {
        switch result {
        case .failure(let failure): return failure.kind == .unreachable || (!streaming && failure.kind == .timedOut)
        case .success(let reply): return !streaming && reply.status == 503
        }
    }

    private func moveToNext() {
        current = (current + 1) % urls.count
    }

    private func sendOnce(_ method: Method, _ path: String, body: [UInt8]?, streaming: Bool,
                          onChunk: (([UInt8]) -> Void)?, completion: @escaping (Result<Reply, Failure>) -> Void) {
        let call = PendingCall(url: url, completion: completion, onChunk: onChunk)
        let context = Unmanaged.passRetained(call).toOpaque()
        guard let request = evhttp_request_new({ request, context in
            Unmanaged<PendingCall>.fromOpaque(context!).takeRetainedValue().finish(request)
        }, context) else {
            Unmanaged<PendingCall>.fromOpaque(context).release()
            completion(.failure(Failure(kind: .broken, message: "cannot create an HTTP request")))
            return
        }
        evhttp_request_set_error_cb(request) { error, context in
            Unmanaged<PendingCall>.fromOpaque(context!).takeUnretainedValue().failed(error, errno)
        }
        if onChunk != nil {
            evhttp_request_set_chunked_cb(request) { request, context in
                guard let request else { return }
                Unmanaged<PendingCall>.fromOpaque(context!).takeUnretainedValue().chunk(request)
            }
        }
        let headers = evhttp_request_get_output_headers(request)
        evhttp_add_header(headers, "Host", "\(url.host):\(url.port)")
        evhttp_add_header(headers, "Accept", streaming ? "text/event-stream" : "application/json")
        evhttp_add_header(headers, "User-Agent", "registryctl")
        if let token { evhttp_add_header(headers, "Authorization", "Bearer " + token) }
        if let body {
            evhttp_add_header(headers, "Content-Type", "application/json")
            body.withUnsafeBytes { _ = evbuffer_add(evhttp_request_get_output_buffer(request), $0.baseAddress, $0.count) }
        }
        let connection: OpaquePointer
        switch connectionForRequests(streaming: streaming) {
        case .success(let made): connection = made
        case .failure(let failure):
            evhttp_request_free(request)
            Unmanaged<PendingCall>.fromOpaque(context).release()
            completion(.failure(failure))
            return
        }
        if url.secure { call.tlsEvents = evhttp_connection_get_bufferevent(connection) }
        if evhttp_make_request(connection, request, method.command, path) != 0 {
            // libevent has freed the request (and called nothing): answer here.
            Unmanaged<PendingCall>.fromOpaque(context).release()
            completion(.failure(Failure(kind: .unreachable, message: "cannot send a request to the registry at \(url)")))
        }
    }

    // MARK: Synchronous

    /// Sends a request and waits for its answer.
    public func call(_ method: Method, _ path: String, body: [UInt8]? = nil) throws(Failure) -> Reply {
        precondition(ownsBase, "call(_:_:body:) needs a connection with its own event base")
        var outcome: Result<Reply, Failure>?
        send(method, path, body: body) { result in
            outcome = result
        }
        while outcome == nil {
            if event_base_loop(base, Int32(EVLOOP_ONCE)) != 0 && outcome == nil {
                throw Failure(kind: .broken, message: "the event loop stopped before the registry answered")
            }
        }
        return try outcome!.get()
    }

    /// Follows a stream (`GET /watch…`): `onChunk` gets each piece as it arrives, until the
    /// registry ends the stream or the connection fails.
    public func follow(_ path: String, onChunk: @escaping ([UInt8]) -> Void) throws(Failure) -> Reply {
        precondition(ownsBase, "follow(_:onChunk:) needs a connection with its own event base")
        var outcome: Result<Reply, Failure>?
        send(.get, path, streaming: true, onChunk: onChunk) { result in
            outcome = result
        }
        while outcome == nil {
            if event_base_loop(base, Int32(EVLOOP_ONCE)) != 0 && outcome == nil {
                throw Failure(kind: .broken, message: "the event loop stopped while following the stream")
            }
        }
        return try outcome!.get()
    }

    /// The keep-alive connection for ordinary requests; a stream gets one of its own with no
    /// read timeout but the registry's keep-alives.
    private func connectionForRequests(streaming: Bool) -> Result<OpaquePointer, Failure> {
        if !streaming, let connection = connections[current] {
            guard closed.remove(connection) != nil else { return .success(connection) }
            evhttp_connection_free(connection)
            connections[current] = nil
        }
        let made: OpaquePointer
        if url.secure {
            if tls == nil {
                do {
                    tls = try TLSClientContext()
                } catch {
                    return .failure(Failure(kind: .broken, message: "cannot set up TLS for \(url): \(error.message)"))
                }
            }
            guard let events = tls?.connectingBufferevent(base, host: url.host),
                  let connection = evhttp_connection_base_bufferevent_new(base, dns, events, url.host, url.port) else {
                return .failure(Failure(kind: .broken, message: "cannot create a TLS connection to \(url)"))
            }
            made = connection
            if !streaming {
                evhttp_connection_set_closecb(connection, { connection, context in
                    guard let connection, let context else { return }
                    Unmanaged<RegistryConnection>.fromOpaque(context).takeUnretainedValue().closed.insert(connection)
                }, Unmanaged.passUnretained(self).toOpaque())
            }
        } else {
            guard let connection = evhttp_connection_base_new(base, dns, url.host, url.port) else {
                fatalError("cannot create an HTTP connection")
            }
            made = connection
        }
        let limit = streaming ? Duration.seconds(60) : timeout
        let (seconds, attoseconds) = limit.components
        var interval = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        evhttp_connection_set_timeout_tv(made, &interval)
        evhttp_connection_set_retries(made, 0)
        if !streaming { connections[current] = made }
        return .success(made)
    }
}

/// One request in flight: what to call back, and what libevent said went wrong.
private final class PendingCall {
    let url: RegistryURL
    let completion: (Result<RegistryConnection.Reply, RegistryConnection.Failure>) -> Void
    let onChunk: (([UInt8]) -> Void)?
    var error: (kind: evhttp_request_error, errno: Int32)?
    /// An https request's bufferevent, asked why the connection failed.
    var tlsEvents: OpaquePointer?
    /// What TLS said when the request failed.
    var tlsFailure: String?

    init(url: RegistryURL, completion: @escaping (Result<RegistryConnection.Reply, RegistryConnection.Failure>) -> Void,
         onChunk: (([UInt8]) -> Void)?) {
        self.url = url
        self.completion = completion
        self.onChunk = onChunk
    }

    func failed(_ kind: evhttp_request_error, _ code: Int32) {
        error = (kind, code)
        if let tlsEvents { tlsFailure = TLSClientContext.failure(of: tlsEvents) }
    }

    /// Set when the answer's headers show it is not a registry's: its body is not delivered.
    private var foreign: RegistryConnection.Failure?

    func chunk(_ request: UnsafeMutablePointer<evhttp_request>) {
        if foreign == nil { foreign = Self.foreignAnswer(request, url: url) }
        guard foreign == nil, let buffer = evhttp_request_get_input_buffer(request) else { return }
        let length = evbuffer_get_length(buffer)
        guard length > 0 else { return }
        var bytes = [UInt8](repeating: 0, count: length)
        evbuffer_remove(buffer, &bytes, length)
        onChunk?(bytes)
    }

    func finish(_ request: UnsafeMutablePointer<evhttp_request>?) {
        guard let request, evhttp_request_get_response_code(request) != 0 else {
            completion(.failure(describeFailure()))
            return
        }
        if let foreign = foreign ?? Self.foreignAnswer(request, url: url) {
            completion(.failure(foreign))
            return
        }
        var headers: [(name: String, value: String)] = []
        var header = evhttp_request_get_input_headers(request)?.pointee.tqh_first
        while let entry = header {
            headers.append((String(cString: entry.pointee.key), String(cString: entry.pointee.value)))
            header = entry.pointee.next.tqe_next
        }
        var body: [UInt8] = []
        if let buffer = evhttp_request_get_input_buffer(request) {
            let length = evbuffer_get_length(buffer)
            if length > 0 {
                body = [UInt8](repeating: 0, count: length)
                evbuffer_remove(buffer, &body, length)
                if let onChunk {
                    onChunk(body)
                    body = []
                }
            }
        }
        let reply = RegistryConnection.Reply(status: Int(evhttp_request_get_response_code(request)), headers: headers, body: body)
        if reply.status == 404, onChunk == nil, !Self.isRegistryNotFound(reply) {
            completion(.failure(.init(kind: .notARegistry, message: "the server at \(url) answered 404 in a way the registry never does "
                + "(\(String(reply.text.prefix(120)))); is --registry or REGISTRY_URL pointing at the registry?")))
            return
        }
        completion(.success(reply))
    }

    /// Every answer of the registry is JSON, or an event stream: anything else (an HTML page,
    /// plain text, no type) comes from another server at that address, and is reported as
    /// such rather than read as a registry's 404 or 500.
    private static func foreignAnswer(_ request: UnsafeMutablePointer<evhttp_request>, url: RegistryURL) -> RegistryConnection.Failure? {
        let type = evhttp_find_header(evhttp_request_get_input_headers(request), "Content-Type").map { String(cString: $0) }
        let media = type?.split(separator: ";").first.map { String($0.filter { $0 != " " && $0 != "\t" }).lowercased() }
        if media == "application/json" || media == "text/event-stream" { return nil }
        let status = evhttp_request_get_response_code(request)
        return .init(kind: .notARegistry, message: "the server at \(url) answered \(status) with \(type.map { "Content-Type \($0)" } ?? "no Content-Type"), "
            + "not as a registry does (every registry answer is JSON); is --registry or REGISTRY_URL pointing at the registry?")
    }

    /// The registry's 404s: a service not found (it carries `instances`), an instance not found
    /// (`"status":"not_found"`), or a path it does not serve (`no such endpoint: …`). Another
    /// JSON service at the same address answers its own way, and is reported as not a registry
    /// rather than as a missing service.
    private static func isRegistryNotFound(_ reply: RegistryConnection.Reply) -> Bool {
        guard let json = reply.json else { return false }
        if json[member: "instances"] != nil { return true }
        if case .string("not_found")? = json[member: "status"] { return true }
        return reply.message?.hasPrefix("no such endpoint: ") == true
    }

    private func describeFailure() -> RegistryConnection.Failure {
        var hint = "is it running there? Point --registry or REGISTRY_URL at it"
        if url.secure {
            // TLS 1.3 clients finish their side of the handshake before the server has checked
            // their certificate: its refusal can arrive as a reset rather than an alert.
            hint += "; if it requires a client certificate, give one its client CA signed with --cert and --key"
        }
        if let tlsFailure {
            return .init(kind: .unreachable, message: "the TLS connection to the registry at \(url) failed: \(tlsFailure); "
                + "check --cacert (the CA that signed the registry's certificate) and, if it asks for one, --cert and --key")
        }
        switch error?.kind {
        case EVREQ_HTTP_TIMEOUT?:
            return .init(kind: .timedOut, message: "the registry at \(url) did not answer in time")
        case EVREQ_HTTP_EOF?:
            if let code = error?.errno, [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ECONNRESET].contains(code) {
                return .init(kind: .unreachable, message: "cannot reach the registry at \(url) (\(String(cString: strerror(code)))); \(hint)")
            }
            return .init(kind: .unreachable, message: "the registry at \(url) closed the connection without answering; \(hint)")
        case EVREQ_HTTP_INVALID_HEADER?, EVREQ_HTTP_BUFFER_ERROR?, EVREQ_HTTP_DATA_TOO_LONG?:
            return .init(kind: .broken, message: "the answer from \(url) could not be read as HTTP; is that a registry?")
        default:
            return .init(kind: .unreachable, message: "cannot reach the registry at \(url); \(hint)")
        }
    }
}
