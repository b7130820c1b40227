/// What the server sends back for one request: a status, a JSON body and, for 405, the
/// methods the path does allow. Every response of this server is JSON.
struct Response {
    var status: Int32
    var body: [UInt8]
    var allow: StaticString?

    init(status: Int32, body: [UInt8], allow: StaticString? = nil) {
        self.status = status
        self.body = body
        self.allow = allow
    }

    /// `{"status":"error","message":…}`: the one shape of every error this server sends.
    static func error(_ status: Int32, _ message: String, allow: StaticString? = nil) -> Response {
        Response(status: status, body: errorBody(message), allow: allow)
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
        return Response(status: status, body: json.bytes)
    }
}

/// The request methods evhttp can parse. evhttp is told to accept all of them, so that a
/// method a path does not serve gets the router's 405 with `Allow`, not evhttp's 501.
enum HTTPMethod: Equatable {
    case get, head, post, put, delete, options, patch, trace, connect

    var name: String {
        switch self {
        case .get: return "GET"
        case .head: return "HEAD"
        case .post: return "POST"
        case .put: return "PUT"
        case .delete: return "DELETE"
        case .options: return "OPTIONS"
        case .patch: return "PATCH"
        case .trace: return "TRACE"
        case .connect: return "CONNECT"
        }
    }
}
