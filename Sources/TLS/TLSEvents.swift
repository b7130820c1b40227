#if canImport(Glibc)
import Glibc
#endif
import COpenSSL

/// What the server's TLS handshakes did, process-wide (OpenSSL's callbacks carry no context
/// of ours, and the one loop runs every handshake): completed handshakes, and refusals by
/// reason, for `/metrics` and the log.
public enum TLSEvents {
    nonisolated(unsafe) public private(set) static var handshakes: UInt64 = 0
    /// Handshakes the server ended with an alert, by the reason: the certificate check's
    /// ("certificate has expired", "unable to get local issuer certificate") when it failed,
    /// else the alert's ("certificate required", "protocol version").
    nonisolated(unsafe) public private(set) static var refusals: [String: UInt64] = [:]
    /// Told of each refusal with its reason and the client's address (for a throttled log line).
    nonisolated(unsafe) public static var onRefusal: ((_ reason: String, _ client: String) -> Void)?
    /// The certificate check's reason, held until the alert it causes is sent.
    nonisolated(unsafe) private static var failedCheck: String?

    static let verified: @convention(c) (Int32, OpaquePointer?) -> Int32 = { preverified, store in
        if preverified == 0, let store {
            let code = X509_STORE_CTX_get_error(store)
            TLSEvents.failedCheck = String(cString: X509_verify_cert_error_string(Int(code)))
        }
        return preverified
    }

    static let info: @convention(c) (OpaquePointer?, Int32, Int32) -> Void = { session, place, value in
        if place & SSL_CB_HANDSHAKE_DONE != 0 {
            TLSEvents.handshakes += 1
        } else if place & SSL_CB_ALERT != 0, place & SSL_CB_WRITE != 0, value >> 8 == SSL3_AL_FATAL,
                  let session, SSL_is_init_finished(session) == 0 {
            let reason = TLSEvents.failedCheck ?? TLSEvents.alertName(value & 0xFF)
            TLSEvents.failedCheck = nil
            TLSEvents.refusals[reason, default: 0] += 1
            if let report = TLSEvents.onRefusal { report(reason, TLSEvents.peer(of: SSL_get_fd(session))) }
        }
    }

    /// OpenSSL 3.0 names the alerts TLS 1.3 added "unknown".
    static func alertName(_ code: Int32) -> String {
        switch code {
        case 109: return "missing extension"
        case 116: return "certificate required"
        case 120: return "no application protocol"
        default: return String(cString: SSL_alert_desc_string_long(code))
        }
    }

    private static func peer(of socket: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let found = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(socket, $0, &length) }
        }
        guard found == 0 else { return "-" }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var ip = address.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &ip, &text, socklen_t(text.count))
                }
            }
        case AF_INET6:
            withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var ip = address.pointee.sin6_addr
                    _ = inet_ntop(AF_INET6, &ip, &text, socklen_t(text.count))
                }
            }
        default:
            return "-"
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
