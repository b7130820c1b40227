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
}
