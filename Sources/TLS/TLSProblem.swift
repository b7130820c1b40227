import COpenSSL

/// A TLS set-up that failed: which file or step, and OpenSSL's reasons.
public struct TLSProblem: Error, Equatable, Sendable {
    public let message: String

    public init(_ message: String) { self.message = message }

    /// `what`, followed by the reasons OpenSSL queued (which are taken off its queue).
    static func openSSL(_ what: String) -> TLSProblem {
        let reasons = takeErrors()
        return TLSProblem(reasons.isEmpty ? what : "\(what): \(reasons)")
    }

    /// OpenSSL's queued errors, as its reason strings ("no such file", "key values mismatch").
    static func takeErrors() -> String {
        var reasons: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            if let reason = ERR_reason_error_string(code) {
                let text = String(cString: reason)
                if !reasons.contains(text) { reasons.append(text) }
            } else {
                reasons.append("error \(code)")
            }
        }
        return reasons.joined(separator: "; ")
    }

    /// Loads a PEM certificate chain (`role`'s own first) and its unencrypted key into
    /// `context`, saying which file is wrong, and when the key is another certificate's.
    static func useCertificate(_ certificate: String, key: String, in context: OpaquePointer, role: String) throws(TLSProblem) {
        guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1 else {
            throw .openSSL("cannot use \(certificate) as the \(role) certificate (a PEM certificate chain, the \(role)'s first)")
        }
        let mismatch = TLSProblem("the key in \(key) does not belong to the certificate in \(certificate)")
        guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1 else {
            let problem = TLSProblem.openSSL("cannot use \(key) as the \(role) key (PEM, unencrypted)")
            throw problem.message.contains("key values mismatch") ? mismatch : problem
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            _ = takeErrors()
            throw mismatch
        }
    }
}
