import CLibevent
import JSON

/// What the server sends back for one request: a status, a JSON body, the change index
/// for reads (`X-Registry-Index`) and, for 405, the methods the path does allow.
///
/// A large body may come in parts (`segments`, sent in order after `body`): a listing of
/// thousands of instances is then a list of cached blocks, each sent by reference, instead
/// of a copy of all of them joined.
struct Response {
    var status: Int32
    var body: [UInt8]
    var segments: [[UInt8]] = []
    var index: UInt64?
    var allow: String?
    var contentType: StaticString = "application/json"
    /// Seconds for a `Retry-After` header (429, 503).
    var retryAfter: Int?
    /// Headers few answers carry (CORS), as name and value.
    var extraHeaders: [(name: String, value: String)] = []
    /// An error's message, for the access log (the body holds it too).
    var message: String?
    /// Why access was denied (`no_token`, `unknown_token`, `forbidden`), for `/metrics`.
    var denial: String?
    /// Cluster mode: what every read carries about this replica's contact with etcd.
    var replicaHeaders: ReplicaHeaders?

    init(status: Int32, body: [UInt8], index: UInt64? = nil, allow: String? = nil) {
        self.status = status
        self.body = body
        self.index = index
        self.allow = allow
    }

    /// Every byte of the body, joined (tests, and stream events made once per state).
    var bytes: [UInt8] {
        segments.isEmpty ? body : segments.reduce(into: body) { $0 += $1 }
    }

    var byteCount: Int { segments.reduce(body.count) { $0 + $1.count } }

    /// `{"status":"error","message":…}`: the one shape of every error this server sends.
    static func error(_ status: Int32, _ message: String, allow: String? = nil) -> Response {
        var response = Response(status: status, body: errorBody(message), allow: allow)
        response.message = message
        return response
    }

    static func errorBody(_ message: String) -> [UInt8] {
        var json = JSONWriter()
        json.raw("{\"status\":\"error\",\"message\":")
        json.string(message)
        json.raw("}")
        return json.bytes
    }

    /// `{"status":S,"message":M}`, the shape of every write's answer.
    static func status(_ status: Int32, _ word: StaticString, _ message: String) -> Response {
        var json = JSONWriter()
        json.raw("{\"status\":\"")
        json.raw(word)
        json.raw("\",\"message\":")
        json.string(message)
        json.raw("}")
        var response = Response(status: status, body: json.bytes)
        if status >= 400 { response.message = message }
        return response
    }
}

/// `evhttp_send_reply` with the reason phrase for statuses libevent 2.1's table lacks: it
/// knows 400–417 and 500–505, and would send "Client Error" for a 429 or a 431.
func sendReply(_ request: UnsafeMutablePointer<evhttp_request>, _ status: Int32) {
    let reason: StaticString?
    switch status {
    case 422: reason = "Unprocessable Content"
    case 428: reason = "Precondition Required"
    case 429: reason = "Too Many Requests"
    case 431: reason = "Request Header Fields Too Large"
    default: reason = nil
    }
    guard let reason else {
        evhttp_send_reply(request, status, nil, nil)
        return
    }
    reason.withUTF8Buffer { text in
        text.withMemoryRebound(to: CChar.self) { evhttp_send_reply(request, status, $0.baseAddress, nil) }
    }
}
