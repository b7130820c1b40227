#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import COpenSSL

/// The client side of TLS: which CAs a server's certificate must chain to (the system's, or a
/// bundle such as the registry's own CA), and, for mutual TLS, the client's certificate and
/// key. The server's name is checked against its certificate (DNS names, or an IP address).
public final class TLSClientContext {
    public let context: OpaquePointer

    /// `caFile`: a PEM bundle to trust instead of the system's CAs; `certificate` and `key`:
    /// this client's, for a server that asks for one. `verifyPeer` false accepts any
    /// certificate (a health check's `tls_skip_verify`, as Consul's `TLSSkipVerify`).
    public init(caFile: String? = nil, certificate: String? = nil, key: String? = nil, verifyPeer: Bool = true) throws(TLSProblem) {
        _ = TLSProblem.takeErrors()
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw .openSSL("cannot create a TLS context") }
        var ready = false
        defer { if !ready { SSL_CTX_free(context) } }
        guard COpenSSL_set_min_tls12(context) == 1 else { throw .openSSL("cannot require TLS 1.2 or later") }
        COpenSSL_client_options(context)
        if let caFile {
            guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                throw .openSSL("cannot read the CA bundle \(caFile) (PEM certificates)")
            }
        } else if SSL_CTX_set_default_verify_paths(context) != 1 {
            throw .openSSL("cannot read the system's CA certificates")
        }
        SSL_CTX_set_verify(context, verifyPeer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
        switch (certificate, key) {
        case (let certificate?, let key?):
            try TLSProblem.useCertificate(certificate, key: key, in: context, role: "client")
        case (nil, nil):
            break
        default:
            throw TLSProblem("a client certificate needs its key, and a key its certificate: give both (--cert and --key)")
        }
        self.context = context
        ready = true
    }

    deinit { SSL_CTX_free(context) }

    /// A bufferevent that opens a TLS connection to `host` (sent as SNI when it is a name,
    /// and checked against the certificate) on a socket evhttp connects later.
    public func connectingBufferevent(_ base: OpaquePointer, host: String) -> OpaquePointer? {
        guard let session = SSL_new(context) else {
            _ = TLSProblem.takeErrors()
            return nil
        }
        if Self.isAddress(host) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(session), host)
        } else {
            SSL_set1_host(session, host)
            _ = COpenSSL_set_sni(session, host)
        }
        guard let bufferevent = bufferevent_openssl_socket_new(base, -1, session, BUFFEREVENT_SSL_CONNECTING,
                                                               Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)) else {
            return nil
        }
        bufferevent_openssl_set_allow_dirty_shutdown(bufferevent, 1)
        return bufferevent
    }

    /// Why the TLS connection on `bufferevent` failed, if it did: the certificate check's
    /// reason, or OpenSSL's error.
    public static func failure(of bufferevent: OpaquePointer) -> String? {
        if let session = bufferevent_openssl_get_ssl(bufferevent) {
            let result = SSL_get_verify_result(session)
            if result != X509_V_OK { return "the server's certificate was refused: " + String(cString: X509_verify_cert_error_string(result)) }
        }
        let code = bufferevent_get_openssl_error(bufferevent)
        guard code != 0 else { return nil }
        var reasons: [String] = []
        var next = code
        while next != 0 {
            if let reason = ERR_reason_error_string(next) { reasons.append(String(cString: reason)) }
            next = bufferevent_get_openssl_error(bufferevent)
        }
        return reasons.isEmpty ? "TLS error \(code)" : reasons.joined(separator: "; ")
    }

    static func isAddress(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
