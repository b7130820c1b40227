import JSON
import Registry
import TLS

/// The TLS listener's certificates on the loop (`--tls-cert`, `--tls-key`, `--tls-client-ca`):
/// loaded at start (a bad file stops the start), reloaded on SIGHUP (a bad file keeps the
/// certificates in force and says why; new connections get the new ones, open ones keep
/// theirs), and the handshake refusals logged, at most one line per interval.
final class Certificates {
    struct LoadError: Error {
        let message: String
    }

    let certificatePath: String
    let keyPath: String
    let clientCAPath: String?
    private(set) var current: TLSServerContext
    private(set) var reloads = 0
    private(set) var failedReloads = 0
    /// Told of a reload's new context (the TLS front end, for its new connections).
    var onReload: ((TLSServerContext) -> Void)?
    private let logger: Logger
    private var refusalLog = LogThrottle()

    /// A certificate that expires sooner than this is warned about at start and at each reload.
    static let expiryWarning: Int64 = 30 * 86_400

    init(config: Config, logger: Logger) throws(LoadError) {
        certificatePath = config.tlsCertificate ?? ""
        keyPath = config.tlsKey ?? ""
        clientCAPath = config.tlsClientCA
        self.logger = logger
        do {
            current = try TLSServerContext(certificate: certificatePath, key: keyPath, clientCA: clientCAPath)
        } catch {
            throw LoadError(message: "TLS cannot start: \(error.message); fix the files, or start without --tls-cert")
        }
        TLSEvents.onRefusal = { [unowned self] reason, client in refused(reason: reason, client: client) }
    }

    /// " (client certificates required)" for the start-up banner, or nothing.
    var clientNote: String { clientCAPath == nil ? "" : " (client certificates signed by \(clientCAPath!) required)" }

    func logLoaded() {
        logger.info("tls_loaded", ["cert": certificatePath, "key": keyPath, "expires": Self.date(current.certificateNotAfter),
                                   "client_ca": clientCAPath ?? "none",
                                   "client_certificates": current.requiresClientCertificate ? "required" : "not asked for"])
        warnIfExpiring(current)
    }

    /// SIGHUP: the files again.
    func reload() {
        do {
            let fresh = try TLSServerContext(certificate: certificatePath, key: keyPath, clientCA: clientCAPath)
            current = fresh
            reloads += 1
            onReload?(fresh)
            logger.info("tls_reloaded", ["cert": certificatePath, "expires": Self.date(fresh.certificateNotAfter),
                                         "client_ca": clientCAPath ?? "none", "note": "new connections use these; open ones keep theirs"])
            warnIfExpiring(fresh)
        } catch {
            failedReloads += 1
            logger.error("tls_reload_failed", ["error": error.message,
                                               "note": "the certificates loaded before stay in force; fix the files and send SIGHUP again"])
        }
    }

    private func warnIfExpiring(_ context: TLSServerContext) {
        let left = context.certificateNotAfter - Clock.wallNow() / 1_000_000_000
        guard left < Self.expiryWarning else { return }
        logger.warn(left <= 0 ? "tls_certificate_expired" : "tls_certificate_expires_soon", [
            "cert": certificatePath, "expires": Self.date(context.certificateNotAfter), "days_left": max(0, left / 86_400),
            "note": "clients will refuse it once it has expired; put a renewed certificate in place and send SIGHUP",
        ])
    }

    private func refused(reason: String, client: String) {
        guard let suppressed = refusalLog.admit(now: Clock.monotonicNow()) else { return }
        logger.info("tls_handshake_refused", ["reason": reason, "client": client, "refusals_not_logged": suppressed])
    }

    /// Seconds since 1970 as an RFC 3339 date (UTC), as the API writes its timestamps.
    static func date(_ seconds: Int64) -> String {
        var json = JSONWriter(capacity: 32)
        json.timestamp(unixNanoseconds: seconds &* 1_000_000_000)
        return String(decoding: json.bytes.dropFirst().dropLast(), as: UTF8.self)
    }
}
