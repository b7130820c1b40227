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

    var method: HTTPMethod? {
        switch evhttp_request_get_command(raw) {
        case EVHTTP_REQ_GET: return .get
        case EVHTTP_REQ_HEAD: return .head
        case EVHTTP_REQ_POST: return .post
        case EVHTTP_REQ_PUT: return .put
        case EVHTTP_REQ_DELETE: return .delete
        case EVHTTP_REQ_OPTIONS: return .options
        case EVHTTP_REQ_PATCH: return .patch
        case EVHTTP_REQ_TRACE: return .trace
        case EVHTTP_REQ_CONNECT: return .connect
        default: return nil
        }
    }

    /// The raw path of the request URI (percent-encoding intact, no query), or nil when
    /// evhttp kept no path (an absolute-form URI without one, `*`).
    func withPath<T>(_ body: (UnsafeBufferPointer<UInt8>) -> T) -> T? {
        guard let uri = evhttp_request_get_evhttp_uri(raw), let path = evhttp_uri_get_path(uri) else { return nil }
        let length = strlen(path)
        return path.withMemoryRebound(to: UInt8.self, capacity: length) { body(UnsafeBufferPointer(start: $0, count: length)) }
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

    consuming func reply(_ response: Response) {
        send(status: response.status, body: response.body, allow: response.allow)
        discard self
    }

    private func send(status: Int32, body: [UInt8], allow: StaticString?) {
        let headers = evhttp_request_get_output_headers(raw)
        evhttp_add_header(headers, "Content-Type", "application/json")
        if let allow {
            allow.withUTF8Buffer { value in
                value.withMemoryRebound(to: CChar.self) { _ = evhttp_add_header(headers, "Allow", $0.baseAddress) }
            }
        }
        body.withUnsafeBytes { bytes in
            _ = evbuffer_add(evhttp_request_get_output_buffer(raw), bytes.baseAddress, bytes.count)
        }
        evhttp_send_reply(raw, status, nil, nil)
    }

    deinit {
        send(status: 500, body: Response.errorBody("internal error: the request was not answered"), allow: nil)
    }
}
