#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import COpenSSL

/// The server side of TLS for one listener: an OpenSSL context made from PEM files, TLS 1.2
/// and 1.3 only, with forward-secret AEAD ciphers for 1.2 (1.3's suites are all of that
/// kind). With a client CA, a client certificate signed by it is required (mutual TLS).
///
/// A reload makes a new context; connections already open keep the one they began with
/// (OpenSSL counts the references), new ones get the new one.
public final class TLSServerContext {
    /// OpenSSL's `SSL_CTX`.
    public let context: OpaquePointer
    /// When the server certificate stops being valid, in seconds since 1970.
    public let certificateNotAfter: Int64
    public let requiresClientCertificate: Bool

    /// Mozilla's "intermediate" TLS 1.2 list: ECDHE key exchange, AES-GCM or ChaCha20-Poly1305.
    static let tls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    /// Loads `certificate` (a PEM chain, the server's first), `key` and, for mutual TLS, the
    /// CA bundle `clientCA` that client certificates must chain to.
    public init(certificate: String, key: String, clientCA: String?) throws(TLSProblem) {
        _ = TLSProblem.takeErrors()
        guard let context = SSL_CTX_new(TLS_server_method()) else { throw .openSSL("cannot create a TLS context") }
        var ready = false
        defer { if !ready { SSL_CTX_free(context) } }
        guard COpenSSL_set_min_tls12(context) == 1 else { throw .openSSL("cannot require TLS 1.2 or later") }
        COpenSSL_server_options(context)
        guard SSL_CTX_set_cipher_list(context, Self.tls12Ciphers) == 1 else { throw .openSSL("cannot set the TLS 1.2 ciphers") }
        try TLSProblem.useCertificate(certificate, key: key, in: context, role: "server")
        certificateNotAfter = SSL_CTX_get0_certificate(context).map { COpenSSL_not_after($0) } ?? 0
        // Resumed sessions need an id context once client certificates are asked for.
        let sessionContext: [UInt8] = Array("service-registry".utf8)
        SSL_CTX_set_session_id_context(context, sessionContext, UInt32(sessionContext.count))
        if let clientCA {
            guard SSL_CTX_load_verify_locations(context, clientCA, nil) == 1 else {
                throw .openSSL("cannot read the client CA bundle \(clientCA) (PEM certificates)")
            }
            guard let names = SSL_load_client_CA_file(clientCA) else {
                throw .openSSL("\(clientCA) holds no CA certificate")
            }
            SSL_CTX_set_client_CA_list(context, names)
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, TLSEvents.verified)
        } else {
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        }
        SSL_CTX_set_info_callback(context, TLSEvents.info)
        requiresClientCertificate = clientCA != nil
        self.context = context
        ready = true
    }

    deinit { SSL_CTX_free(context) }

    /// A bufferevent that accepts a TLS connection on a socket evhttp sets later (for
    /// `evhttp_set_bevcb`). Unclean closes (no close_notify, as most clients do) are ordinary
    /// ends of the connection, not errors.
    public func acceptingBufferevent(_ base: OpaquePointer) -> OpaquePointer? {
        guard let session = SSL_new(context) else {
            _ = TLSProblem.takeErrors()
            return nil
        }
        guard let bufferevent = bufferevent_openssl_socket_new(base, -1, session, BUFFEREVENT_SSL_ACCEPTING,
                                                               Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)) else {
            return nil
        }
        bufferevent_openssl_set_allow_dirty_shutdown(bufferevent, 1)
        return bufferevent
    }

    /// Writes `count` bytes at `bytes` as one TLS record, now, through the connection's own
    /// OpenSSL session (so through TLS, never around it): true when all of it was written.
    /// False changes nothing the bufferevent cannot carry on from: a write the socket would
    /// block is retried by the bufferevent with the same bytes, as OpenSSL requires.
    public static func writeNow(_ bufferevent: OpaquePointer, _ bytes: UnsafeRawPointer, count: Int) -> Bool {
        guard count > 0, count <= Int(Int32.max), let session = bufferevent_openssl_get_ssl(bufferevent),
              SSL_is_init_finished(session) == 1 else { return false }
        ERR_clear_error()
        let written = SSL_write(session, bytes, Int32(count))
        if written <= 0 { ERR_clear_error() }
        return Int(written) == count
    }

    /// The names of the certificate the client on `bufferevent` presented (its CN, DNS and URI
    /// names), or none.
    public static func peerNames(_ bufferevent: OpaquePointer) -> [String] {
        guard let session = bufferevent_openssl_get_ssl(bufferevent),
              let certificate = SSL_get0_peer_certificate(session) else { return [] }
        return TLSCertificate.names(certificate)
    }
}

enum TLSCertificate {
    static func names(_ certificate: OpaquePointer) -> [String] {
        var buffer = [CChar](repeating: 0, count: 4096)
        let used = COpenSSL_certificate_names(certificate, &buffer, buffer.count)
        guard used > 0 else { return [] }
        return buffer[..<used].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    }
}
