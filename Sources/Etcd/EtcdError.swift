/// Why etcd did not answer a request as asked.
public struct EtcdError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// No connection, or it broke before the answer.
        case unreachable
        /// No answer within the request timeout: the request may or may not have been applied.
        case timedOut
        /// etcd answered with an error (its gRPC code: 14 unavailable, 4 deadline exceeded,
        /// 9 failed precondition, 3 invalid argument, …).
        case server(code: Int)
        /// A watch's start revision was compacted away; `revision` is the oldest one kept.
        case compacted(revision: Int64)
        /// Something answered, but not as etcd's gateway does.
        case malformed
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// etcd refused the auth token sent: it expired (simple tokens after `--auth-token-ttl`
    /// of disuse), or the member that issued it restarted. Authenticating again fixes it.
    public var isInvalidToken: Bool {
        if case .server(let code) = kind, code == 16 { return message.contains("invalid auth token") }
        return false
    }

    /// Another member may do better: the connection failed, it timed out, or the member
    /// could not reach its cluster's leader.
    public var worthAnotherMember: Bool {
        switch kind {
        case .unreachable, .timedOut: return true
        case .server(let code): return code == 14 || code == 4
        case .compacted, .malformed: return false
        }
    }
}
