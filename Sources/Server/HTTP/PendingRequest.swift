#if canImport(Glibc)
import Glibc
#endif
import CLibevent

/// A request evhttp handed us that has not been answered yet.
///
/// Non-copyable, and `reply` consumes it: the compiler refuses a second reply, and a
/// request dropped without one is answered 500 by `deinit`, so a client is never left
/// waiting by a forgotten branch. evhttp frees the request after the reply; nothing may
/// touch it after that, which consuming the handle guarantees.
struct PendingRequest: ~Copyable {
    private let raw: UnsafeMutablePointer<evhttp_request>

    init(_ raw: UnsafeMutablePointer<evhttp_request>) {
        self.raw = raw
    }

    var method: HTTPMethod? { HTTPMethod(command: evhttp_request_get_command(raw)) }

    /// The raw path and query of the request target, split at the first `?`, with their
    /// percent-encoding intact. Read from the request line as sent rather than from evhttp's
    /// parsed URI, which takes `//health` for an authority: an origin-form target is used as
    /// it is; an absolute-form one (`http://host/path`, which RFC 9112 makes servers accept)
    /// loses its scheme and authority; anything else (`*`) is passed whole as the path, which
    /// no route matches.
    func withTarget<T>(_ body: (_ path: UnsafeBufferPointer<UInt8>, _ query: UnsafeBufferPointer<UInt8>?) -> T) -> T {
        guard let uri = evhttp_request_get_uri(raw) else { return body(UnsafeBufferPointer(start: nil, count: 0), nil) }
        let length = strlen(uri)
        return uri.withMemoryRebound(to: UInt8.self, capacity: length) { start in
            let target = UnsafeBufferPointer(start: start, count: length)
            var pathStart = 0
            if length > 0, target[0] != UInt8(ascii: "/"), let schemeEnd = Self.authorityStart(target) {
                pathStart = schemeEnd
                while pathStart < length, target[pathStart] != UInt8(ascii: "/"), target[pathStart] != UInt8(ascii: "?") { pathStart += 1 }
            }
            var queryStart = pathStart
            while queryStart < length, target[queryStart] != UInt8(ascii: "?") { queryStart += 1 }
            let path = UnsafeBufferPointer(rebasing: target[pathStart..<queryStart])
            let query = queryStart < length ? UnsafeBufferPointer(rebasing: target[(queryStart + 1)...]) : nil
            return body(path, query)
        }
    }

    /// Where the authority of an absolute-form target (`http://` or `https://`, any case)
    /// begins; nil for any other target.
    private static func authorityStart(_ target: UnsafeBufferPointer<UInt8>) -> Int? {
        for scheme in ["http://", "https://"] where target.count >= scheme.utf8.count {
            if zip(target, scheme.utf8).allSatisfy({ $0 | 0x20 == $1 | 0x20 }) { return scheme.utf8.count }
        }
        return nil
    }

    /// The whole request body, made contiguous in evhttp's buffer (no copy when it already is).
    func withBody<T>(_ body: (UnsafeBufferPointer<UInt8>) -> T) -> T {
        guard let buffer = evhttp_request_get_input_buffer(raw) else { return body(UnsafeBufferPointer(start: nil, count: 0)) }
        let length = evbuffer_get_length(buffer)
        guard length > 0, let bytes = evbuffer_pullup(buffer, -1) else {
            return body(UnsafeBufferPointer(start: nil, count: 0))
        }
        return body(UnsafeBufferPointer(start: bytes, count: length))
    }

    /// The value of a request header (the first, if it repeats).
    func header(_ name: String) -> String? {
        evhttp_find_header(evhttp_request_get_input_headers(raw), name).map { String(cString: $0) }
    }

    /// The values of `Authorization` and `X-Registry-Token` (or, without it, Consul's
    /// `X-Consul-Token`) as evhttp holds them (nil when absent; the first of each), found in
    /// one pass over the headers, without copies.
    func withTokenHeaders<T>(_ body: (_ authorization: UnsafeBufferPointer<UInt8>?, _ registryToken: UnsafeBufferPointer<UInt8>?) -> T) -> T {
        var authorization: UnsafeMutablePointer<CChar>?
        var registryToken: UnsafeMutablePointer<CChar>?
        var consulToken: UnsafeMutablePointer<CChar>?
        var header = evhttp_request_get_input_headers(raw)?.pointee.tqh_first
        while let entry = header {
            let key = entry.pointee.key!
            // "authorization" is 13 bytes, "x-consul-token" 14, "x-registry-token" 16: the
            // length decides which to compare.
            switch strlen(key) {
            case 13 where authorization == nil && strcasecmp(key, "authorization") == 0: authorization = entry.pointee.value
            case 14 where consulToken == nil && strcasecmp(key, "x-consul-token") == 0: consulToken = entry.pointee.value
            case 16 where registryToken == nil && strcasecmp(key, "x-registry-token") == 0: registryToken = entry.pointee.value
            default: break
            }
            header = entry.pointee.next.tqe_next
        }
        func bytes(_ value: UnsafeMutablePointer<CChar>?) -> UnsafeBufferPointer<UInt8>? {
            value.map { UnsafeBufferPointer(start: UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), count: strlen($0)) }
        }
        return body(bytes(authorization), bytes(registryToken ?? consulToken))
    }

    /// CORS headers for an answer made later (a held request, a stream).
    func addCORSHeaders(origin: String) {
        let headers = evhttp_request_get_output_headers(raw)
        evhttp_add_header(headers, "Access-Control-Allow-Origin", origin)
        evhttp_add_header(headers, "Vary", "Origin")
        evhttp_add_header(headers, "Access-Control-Expose-Headers", "X-Registry-Index")
    }

    /// Lets `body` look at the raw request (its connection, its peer) without answering it.
    func inspect<T>(_ body: (UnsafeMutablePointer<evhttp_request>) -> T) -> T {
        body(raw)
    }

    consuming func reply(_ response: Response) {
        Self.send(raw, response)
        discard self
    }

    /// Hands the request to the one owner of waiting requests (`WatchHub`), which must answer
    /// it with `send(_:_:)` or end its stream; nothing else may touch it.
    consuming func park() -> UnsafeMutablePointer<evhttp_request> {
        let raw = self.raw
        discard self
        return raw
    }

    /// Sends `response` on a request taken with `park()`, and gives it back to evhttp.
    static func send(_ raw: UnsafeMutablePointer<evhttp_request>, _ response: Response) {
        let headers = evhttp_request_get_output_headers(raw)
        response.contentType.withUTF8Buffer { value in
            value.withMemoryRebound(to: CChar.self) { _ = evhttp_add_header(headers, "Content-Type", $0.baseAddress) }
        }
        if let index = response.index {
            withDecimalCString(index) { _ = evhttp_add_header(headers, "X-Registry-Index", $0) }
        }
        for header in response.extraHeaders { evhttp_add_header(headers, header.name, header.value) }
        if let replica = response.replicaHeaders {
            replica.lastContact.withUnsafeBufferPointer { _ = evhttp_add_header(headers, "X-Registry-Last-Contact", $0.baseAddress) }
            _ = evhttp_add_header(headers, "X-Registry-Known-Leader", replica.knownLeader ? "true" : "false")
        }
        if let retryAfter = response.retryAfter {
            withDecimalCString(UInt64(max(0, retryAfter))) { _ = evhttp_add_header(headers, "Retry-After", $0) }
        }
        if let allow = response.allow { evhttp_add_header(headers, "Allow", allow) }
        if evhttp_request_get_command(raw) == EVHTTP_REQ_HEAD {
            // evhttp 2.1 sends whatever is in the output buffer even for HEAD, which would put
            // the client out of step, and adds no Content-Length: the server gives the length
            // a GET would carry and no body.
            withDecimalCString(UInt64(response.byteCount)) { _ = evhttp_add_header(headers, "Content-Length", $0) }
        } else {
            let output = evhttp_request_get_output_buffer(raw)
            addBody(response.body, to: output)
            for segment in response.segments { addBody(segment, to: output) }
        }
        // A filtered connection writes the reply at once (see `Transport`); nothing may touch
        // the request after `endReply`, which can finish it and free the connection.
        let connection = Transport.connection(of: raw)
        connection?.beginReply()
        sendReply(raw, response.status)
        connection?.endReply()
    }

    deinit {
        Self.send(raw, .error(500, "internal error: the request was not answered"))
    }
}

/// A request's peer as evhttp recorded it when it accepted the connection (no system call).
enum Peer {
    static func of(_ request: UnsafeMutablePointer<evhttp_request>) -> (host: String, port: UInt16)? {
        guard let connection = evhttp_request_get_connection(request) else { return nil }
        var address: UnsafeMutablePointer<CChar>?
        var port: UInt16 = 0
        evhttp_connection_get_peer(connection, &address, &port)
        return address.map { (String(cString: $0), port) }
    }
}

extension HTTPMethod {
    init?(command: evhttp_cmd_type) {
        switch command {
        case EVHTTP_REQ_GET: self = .get
        case EVHTTP_REQ_HEAD: self = .head
        case EVHTTP_REQ_POST: self = .post
        case EVHTTP_REQ_PUT: self = .put
        case EVHTTP_REQ_DELETE: self = .delete
        case EVHTTP_REQ_OPTIONS: self = .options
        case EVHTTP_REQ_PATCH: self = .patch
        case EVHTTP_REQ_TRACE: self = .trace
        case EVHTTP_REQ_CONNECT: self = .connect
        default: return nil
        }
    }
}

/// Calls `body` with `value` as a NUL-terminated decimal C string built on the stack: a
/// `String` would cost an allocation for its C form on every read's index header.
private func withDecimalCString<T>(_ value: UInt64, _ body: (UnsafePointer<CChar>) -> T) -> T {
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
    return withUnsafeMutableBytes(of: &digits) { buffer in
        let bytes = buffer.bindMemory(to: CChar.self)
        var position = bytes.count - 1
        bytes[position] = 0
        var remaining = value
        repeat {
            position -= 1
            bytes[position] = CChar(UInt8(ascii: "0") + UInt8(remaining % 10))
            remaining /= 10
        } while remaining > 0
        return body(bytes.baseAddress! + position)
    }
}

/// Bodies at least this large are handed to libevent by reference instead of copied.
private let referenceThreshold = 2048

/// Keeps a body's bytes alive while libevent holds a reference to them, and counted in
/// `OutputMemory` meanwhile.
private final class BodyKeeper {
    let bytes: [UInt8]
    let base: UnsafeRawPointer
    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        base = bytes.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!) }
        OutputMemory.retain(base, bytes: bytes.count)
    }
    deinit { OutputMemory.release(base) }
}

/// Appends `body` to an output buffer. A large body (a discover answer of many instances,
/// usually a cached one) is added by reference, as bare evhttp serves its body: libevent
/// writes straight from the array, which `BodyKeeper` keeps alive (and unchanged, since
/// it is a `let`) until libevent's cleanup callback releases it.
private func addBody(_ body: [UInt8], to buffer: OpaquePointer?) {
    guard body.count >= referenceThreshold else {
        body.withUnsafeBytes { _ = evbuffer_add(buffer, $0.baseAddress, $0.count) }
        return
    }
    let keeper = BodyKeeper(body)
    let context = Unmanaged.passRetained(keeper).toOpaque()
    let added = evbuffer_add_reference(buffer, keeper.base, keeper.bytes.count, { _, _, context in
        guard let context else { return }
        Unmanaged<BodyKeeper>.fromOpaque(context).release()
    }, context)
    if added != 0 {
        Unmanaged<BodyKeeper>.fromOpaque(context).release()
        body.withUnsafeBytes { _ = evbuffer_add(buffer, $0.baseAddress, $0.count) }
    }
}
