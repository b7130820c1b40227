/// The rules on health checks: what the checker can run and what a log line or a listing
/// can show, judged at registration so that nothing wrong is found at the first run.
extension Violation {
    public static let maxChecks = 8
    /// What libevent's HTTP client can send.
    public static let checkMethods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"]
    /// Room for the default id, `service:` and the instance's id and a number.
    public static let maxCheckIDLength = maxIDLength + 16
    public static let maxCheckURLLength = 2048
    public static let maxCheckHeaders = 8
    public static let maxCheckHeaderNameLength = 64
    public static let maxCheckHeaderValueLength = 256
    /// Consul's own floor for an interval; shorter ones would be load, not health.
    public static let checkIntervalRange = Duration.seconds(1)...Duration.seconds(86_400)
    public static let checkTimeoutRange = Duration.milliseconds(1)...Duration.seconds(300)
    public static let checkTTLRange = Duration.seconds(1)...Duration.seconds(86_400)
    /// Below Consul's one-minute minimum on purpose: clients send 30 s and mean it.
    public static let checkDeregisterRange = Duration.seconds(1)...Duration.seconds(30 * 86_400)
    /// Header names the checker sets itself, or that would change how its request is framed.
    static let reservedCheckHeaders: Set<String> = ["content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"]

    public static func checkHealthChecks(_ checks: [HealthCheck]) -> Violation? {
        if checks.count > maxChecks { return .tooManyChecks(count: checks.count) }
        var ids = Set<String>()
        for check in checks {
            if let problem = checkPrintable(check.id, maxLength: maxCheckIDLength) {
                return .badCheck(id: problem == .empty ? "" : check.id, reason: "id " + problem.sentence(maxCheckIDLength))
            }
            if !ids.insert(check.id).inserted { return .badCheck(id: check.id, reason: "the id appears twice among the instance's checks") }
            if let problem = checkPrintable(check.name, maxLength: maxCheckIDLength) {
                return .badCheck(id: check.id, reason: "name " + problem.sentence(maxCheckIDLength))
            }
            if let reason = problem(of: check) { return .badCheck(id: check.id, reason: reason) }
        }
        return nil
    }

    private static func problem(of check: HealthCheck) -> String? {
        switch check.probe {
        case .http(let http):
            if http.url.utf8.count > maxCheckURLLength { return "url is \(http.url.utf8.count) bytes long; the limit is \(maxCheckURLLength)" }
            if http.target == nil {
                return "url \(quoted(http.url)) is not an http:// or https:// URL with a host (and a port from 1 to 65535, "
                    + "no user name, no fragment, printable ASCII only)"
            }
            if !checkMethods.contains(http.method) {
                return "method \(quoted(http.method)) is not one the checker sends: " + checkMethods.joined(separator: ", ")
            }
            if http.headers.count > maxCheckHeaders { return "\(http.headers.count) headers; the limit is \(maxCheckHeaders)" }
            for header in http.headers {
                if header.key.isEmpty || header.key.utf8.count > maxCheckHeaderNameLength || !header.key.utf8.allSatisfy(isTokenByte) {
                    return "header name \(quoted(header.key)) is not an HTTP field name (1 to \(maxCheckHeaderNameLength) token characters)"
                }
                if reservedCheckHeaders.contains(header.key.lowercased()) {
                    return "header \(quoted(header.key)) is set by the checker itself"
                }
                if let problem = checkPrintable(header.value, maxLength: maxCheckHeaderValueLength), problem != .empty {
                    return "header \(quoted(header.key))'s value " + problem.sentence(maxCheckHeaderValueLength)
                }
            }
        case .tcp(let host, let port):
            let hostOK = !host.isEmpty && host.utf8.count <= 253
                && (host.utf8.allSatisfy(CheckURL.isHostByte) || (host.contains(":") && host.utf8.allSatisfy { CheckURL.isHostByte($0) || $0 == UInt8(ascii: ":") }))
            if !hostOK { return "tcp host \(quoted(host)) is not a host name or an IP address" }
            if !(1...65535).contains(port) { return "tcp port must be from 1 to 65535, got \(port)" }
        case .ttl(let ttl):
            if !checkTTLRange.contains(ttl) { return "ttl must be from \(checkTTLRange.lowerBound.secondsText) to \(checkTTLRange.upperBound.secondsText), got \(ttl.secondsText)" }
        }
        if check.isActive {
            if !checkIntervalRange.contains(check.interval) {
                return "interval must be from \(checkIntervalRange.lowerBound.secondsText) to \(checkIntervalRange.upperBound.secondsText), got \(check.interval.secondsText)"
            }
            if !checkTimeoutRange.contains(check.timeout) {
                return "timeout must be from \(checkTimeoutRange.lowerBound.secondsText) to \(checkTimeoutRange.upperBound.secondsText), got \(check.timeout.secondsText)"
            }
        }
        if let after = check.deregisterAfter, !checkDeregisterRange.contains(after) {
            return "deregister_after must be from \(checkDeregisterRange.lowerBound.secondsText) to \(checkDeregisterRange.upperBound.secondsText), got \(after.secondsText)"
        }
        return nil
    }

    /// RFC 9110's tchar.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }
}
