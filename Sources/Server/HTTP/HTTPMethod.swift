/// The request methods evhttp can parse. evhttp is told to accept all of them, so that a
/// method a path does not serve gets the router's 405 with `Allow`, not evhttp's 501.
enum HTTPMethod: Int, Equatable, CaseIterable {
    case get, head, post, put, delete, options, patch, trace, connect

    /// Whether a request with this method can change state.
    var isWrite: Bool { self == .post || self == .put || self == .delete || self == .patch }

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
