#if canImport(Glibc)
import Glibc
#endif
import Access
import RegistryClient
import HTTPParsing

/// The ACL file on the loop: loaded at start (a broken file stops the start), reloaded on
/// SIGHUP (a broken file keeps the rules in force and says why), and asked for each
/// request's caller. Without `--acl-file` every request may do everything, as before.
final class AccessControl {
    struct LoadError: Error {
        let message: String
    }

    let path: String?
    private(set) var policy: AccessPolicy?
    private let logger: Logger
    private(set) var reloads = 0
    private(set) var failedReloads = 0
    /// Denials by route number and reason (`no_token`, `unknown_token`, `forbidden`).
    private(set) var denials: [DenialKey: Int] = [:]

    struct DenialKey: Hashable {
        let route: Int
        let reason: String
    }

    init(path: String?, logger: Logger) throws(LoadError) {
        self.path = path
        self.logger = logger
        if let path { policy = try Self.load(path) }
    }

    var isOpen: Bool { policy == nil }

    /// A token file's token (`--replica-token-file`): read as the tools read theirs.
    static func readToken(_ path: String) -> Result<String, LoadError> {
        TokenFile.read(path).mapError { LoadError(message: $0.message) }
    }

    static func load(_ path: String) throws(LoadError) -> AccessPolicy {
        let bytes = try readFile(path, what: "the ACL file")
        do {
            return try AccessPolicy.parse(bytes)
        } catch {
            throw LoadError(message: "the ACL file \(path) is not usable: \(error.message)")
        }
    }

    private static func readFile(_ path: String, what: String) throws(LoadError) -> [UInt8] {
        guard let file = fopen(path, "rb") else {
            throw LoadError(message: "cannot read \(what) \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count > 0 { bytes += chunk[..<count] }
            if count < chunk.count { break }
            if bytes.count > 16 << 20 { throw LoadError(message: "\(what) \(path) is larger than 16 MiB") }
        }
        if ferror(file) != 0 { throw LoadError(message: "cannot read \(what) \(path): \(String(cString: strerror(errno)))") }
        return bytes
    }

    /// SIGHUP: the file again. Returns whether new rules took effect; the caller then ends
    /// the held requests and streams admitted under the old ones.
    @discardableResult
    func reload() -> Bool {
        guard let path else {
            logger.info("acl_reload_skipped", ["note": "no --acl-file was given; the registry is open to every client"])
            return false
        }
        do {
            let fresh = try Self.load(path)
            policy = fresh
            reloads += 1
            logger.info("acl_reloaded", ["path": path, "tokens": fresh.entries.count, "anonymous": fresh.anonymous.summary])
            return true
        } catch {
            failedReloads += 1
            logger.error("acl_reload_failed", ["error": error.message,
                                               "note": "the rules loaded before stay in force; fix the file and send SIGHUP again"])
            return false
        }
    }

    /// The caller a request speaks for, from `Authorization: Bearer …` or `X-Registry-Token`;
    /// without either, from the client certificate's names (`certificateNames`, asked only
    /// then: a TLS listener's) when an entry's `cert_subject` is one of them; else anonymous.
    /// (The headers' bytes as evhttp holds them: no copies on the request path.)
    /// `memo` is the connection's: a keep-alive client sends the same token with every
    /// request, and the caller it stood for under the rules in force is kept there.
    func caller(authorization: UnsafeBufferPointer<UInt8>?, registryToken: UnsafeBufferPointer<UInt8>?,
                certificateNames: (() -> [String])? = nil, memo: TokenMemo? = nil) -> Caller {
        guard let policy else { return .anonymous(.everything) }
        func lookUp(_ token: UnsafeBufferPointer<UInt8>) -> Caller {
            guard let memo else { return policy.caller(token: token) }
            if memo.generation == reloads, memo.matches(token) { return memo.caller }
            let found = policy.caller(token: token)
            memo.remember(token, as: found, generation: reloads)
            return found
        }
        if let registryToken { return lookUp(registryToken) }
        guard let utf8 = authorization else {
            if let certificateNames, let named = policy.caller(certificateNames: certificateNames()) { return named }
            return policy.caller(token: nil as String?)
        }
        // Eureka's clients send HTTP Basic credentials: the token is the password.
        if let password = Self.basicPassword(utf8) {
            return password.withUnsafeBufferPointer { lookUp($0) }
        }
        // "Bearer" is case-insensitive (RFC 6750 follows RFC 7235's auth-scheme).
        let scheme: StaticString = "bearer "
        guard utf8.count > 7 else { return .unknownToken }
        for position in 0..<7 where utf8[position] | 0x20 != scheme.utf8Start[position] { return .unknownToken }
        var start = 7
        while start < utf8.count, utf8[start] == UInt8(ascii: " ") { start += 1 }
        return lookUp(UnsafeBufferPointer(rebasing: utf8[start...]))
    }

    /// The password of `Basic base64(user:password)` (RFC 7617; the scheme in any case), or
    /// nil for any other header. The user name is not looked at: the token alone stands for
    /// the caller.
    static func basicPassword(_ header: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let scheme = Array("basic ".utf8)
        guard header.count > scheme.count, zip(header, scheme).allSatisfy({ $0 | 0x20 == $1 }) else { return nil }
        var value = 0
        var bits = 0
        var decoded: [UInt8] = []
        for byte in header[scheme.count...] {
            let digit: Int
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): digit = Int(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): digit = Int(byte - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = Int(byte - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): digit = 62
            case UInt8(ascii: "/"): digit = 63
            case UInt8(ascii: "="), UInt8(ascii: " "): continue
            default: return []
            }
            value = (value << 6) | digit
            bits += 6
            if bits >= 8 {
                bits -= 8
                decoded.append(UInt8((value >> bits) & 0xFF))
            }
        }
        guard let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else { return decoded }
        return Array(decoded[(colon + 1)...])
    }

    /// What a caller without a token may do (everything without an ACL file): DNS's callers.
    var anonymousGrant: Grant {
        guard let policy else { return .everything }
        return policy.caller(token: nil as String?).grant
    }

    /// The answer to a request its caller may not make: 401 when it has no usable token, 403
    /// when its token lacks the permission. `needed` says what was missing ("write on
    /// service \"payment-api\""); the token itself is never quoted.
    static func denial(_ caller: Caller, needs needed: String) -> Response {
        var response: Response
        let reason: String
        switch caller {
        case .unknownToken:
            reason = "unknown_token"
            response = .error(401, "the token sent is not one this registry knows (this request needs \(needed)); "
                + "check the token, or send none for what anonymous requests may do")
        case .anonymous:
            reason = "no_token"
            response = .error(401, "this request needs a token with \(needed); send it as Authorization: Bearer TOKEN "
                + "or X-Registry-Token")
        case .token(let name, _):
            reason = "forbidden"
            response = .error(403, "the token \"\(name)\" lacks \(needed)")
        }
        response.denial = reason
        if response.status == 401 { response.extraHeaders.append(("WWW-Authenticate", "Bearer realm=\"service-registry\"")) }
        return response
    }

    /// Counts a denial for `/metrics`.
    func count(denial reason: String, route: Int) {
        denials[DenialKey(route: route, reason: reason), default: 0] += 1
    }
}

/// The front end's verdict on a request, before its handler runs.
enum Admission {
    case admitted(Caller)
    case denied(Response)
}

extension AccessControl {
    /// The front end's check, before the handler: probes pass; an unknown token is refused
    /// everywhere else; operator routes need an operator; a read needs some service it may
    /// read. Which service a read or write may touch is the handler's check.
    static func admit(_ caller: Caller, to permission: Route.Permission) -> Admission {
        switch permission {
        case .none:
            return .admitted(caller)
        case .operator:
            return caller.grant.isOperator ? .admitted(caller) : .denied(denial(caller, needs: "the operator permission"))
        case .read:
            if case .unknownToken = caller { return .denied(denial(caller, needs: "read on some service")) }
            return caller.grant.readsSomething ? .admitted(caller) : .denied(denial(caller, needs: "read on some service"))
        case .write:
            if case .unknownToken = caller { return .denied(denial(caller, needs: "write on some service")) }
            return .admitted(caller)
        }
    }
}

/// The last token a connection sent and the caller it stood for, under the ACL file of one
/// generation (a reload starts a new one). The comparison takes the same time however many
/// bytes agree; what it could reveal is only what this connection sent before.
final class TokenMemo {
    private(set) var generation = -1
    private var token: [UInt8] = []
    private(set) var caller: Caller = .unknownToken

    func matches(_ presented: UnsafeBufferPointer<UInt8>) -> Bool {
        guard presented.count == token.count else { return false }
        var difference: UInt8 = 0
        for index in 0..<token.count { difference |= token[index] ^ presented[index] }
        return difference == 0
    }

    func remember(_ presented: UnsafeBufferPointer<UInt8>, as caller: Caller, generation: Int) {
        token = Array(presented)
        self.caller = caller
        self.generation = generation
    }
}
