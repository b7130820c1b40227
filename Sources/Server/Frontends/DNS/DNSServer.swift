#if canImport(Glibc)
import Glibc
#endif
import CLibevent
import DNS
import Registry

/// DNS on the registry's loop (`--dns-port`): a UDP socket and a TCP listener on the same
/// port, answering from `DNSZone` over the registry's reads. Not libevent's evdns server: in
/// 2.1 it has no TCP, truncates into malformed packets and reads its socket until it is empty,
/// so a flood would starve HTTP. Here a UDP callback reads at most `packetsPerCallback`
/// datagrams and yields to the loop; a truncated UDP answer says so (TC), and the whole answer
/// is there over TCP (RFC 7766: length-prefixed messages, several per connection, an idle
/// timeout, a cap on connections).
final class DNSServer {
    struct StartError: Error {
        let message: String
    }

    static let packetsPerCallback = 64
    static let maxTCPConnections = 512
    static let tcpIdleSeconds = 10

    private(set) var port: UInt16 = 0
    private let zone: DNSZone
    private let service: RegistryService
    private let logger: Logger
    private var udpSocket: Int32 = -1
    private var udpEvent: OpaquePointer?
    private var listener: OpaquePointer?
    private var connections: [ObjectIdentifier: TCPConnection] = [:]
    /// Lower-cased service name to the names that lower-case to it (shared with Eureka).
    private let servicesByLabel: ServiceNameIndex
    private var rotations: [String: Int] = [:]
    private var refusalLog = LogThrottle()
    private var buffer = [UInt8](repeating: 0, count: 65_535)

    // Figures for `/metrics`.
    private(set) var answered: [DNSResponseCode: UInt64] = [:]
    private(set) var truncated: UInt64 = 0
    private(set) var dropped: UInt64 = 0
    private(set) var tcpQueries: UInt64 = 0
    var tcpConnections: Int { connections.count }

    /// Whether DNS may list a service: with an ACL file, only what its anonymous grant may
    /// read (DNS has no tokens). Asked at every lookup, so that a reloaded file applies at once.
    var mayList: (String) -> Bool = { _ in true }
    /// Moves when the ACL file is reloaded: kept answers made under older rules are not used.
    var rulesGeneration: () -> Int = { 0 }

    init(host: String, port requested: UInt16, zone: DNSZone, loop: EventLoop, service: RegistryService, names: ServiceNameIndex,
         logger: Logger) throws(StartError) {
        self.zone = zone
        self.service = service
        self.logger = logger
        servicesByLabel = names
        var address = sockaddr_storage()
        var length = socklen_t(0)
        guard Self.socketAddress(host: host, port: requested, into: &address, length: &length) else {
            throw StartError(message: "cannot serve DNS on \(host): not an IP address; give --dns-host an address such as 127.0.0.1 or 0.0.0.0")
        }
        let family = Int32(address.ss_family)
        let context = Unmanaged.passUnretained(self).toOpaque()
        // Port 0 picks a free UDP port, which TCP then takes too; should another program hold
        // that TCP port, another pair is tried.
        for attempt in 1...(requested == 0 ? 20 : 1) {
            let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw StartError(message: "cannot open a UDP socket for DNS: \(String(cString: strerror(errno)))") }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            Self.setPort(requested, in: &address)
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            guard bound == 0 else {
                let reason = String(cString: strerror(errno))
                Glibc.close(fd)
                throw StartError(message: "cannot serve DNS on \(host):\(requested) (UDP): \(reason); choose another --dns-port")
            }
            udpSocket = fd
            port = SocketPort.local(of: fd) ?? requested
            Self.setPort(port, in: &address)
            listener = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    evconnlistener_new_bind(loop.base, { _, socket, _, _, context in
                        Unmanaged<DNSServer>.fromOpaque(context!).takeUnretainedValue().accepted(socket)
                    }, context, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 128, $0, Int32(length))
                }
            }
            if listener != nil { break }
            let code = errno
            Glibc.close(fd)
            udpSocket = -1
            if code == EADDRINUSE && attempt < (requested == 0 ? 20 : 1) { continue }
            throw StartError(message: "cannot serve DNS on \(host):\(port) (TCP): \(String(cString: strerror(code))); choose another --dns-port")
        }
        udpEvent = event_new(loop.base, udpSocket, Int16(EV_READ | EV_PERSIST), { _, _, context in
            Unmanaged<DNSServer>.fromOpaque(context!).takeUnretainedValue().readDatagrams()
        }, context)
        event_add(udpEvent, nil)
    }

    /// Stops answering and frees the sockets; before the loop is freed.
    func close() {
        if let udpEvent { event_free(udpEvent) }
        udpEvent = nil
        if udpSocket >= 0 { Glibc.close(udpSocket) }
        udpSocket = -1
        if let listener { evconnlistener_free(listener) }
        listener = nil
        for connection in connections.values { connection.close() }
        connections.removeAll()
    }

    // MARK: Answers

    /// Answers as last made, by the query's bytes after its id (and the transport): valid
    /// while the registry's change index stays where it was, one variant per rotation. A
    /// resolver asks the same few names again and again; this keeps their cost to a lookup
    /// and a copy.
    private struct CachedAnswer {
        var index: UInt64
        var rules: Int
        /// The service label whose rotation counter picks the variant; nil: one variant.
        var label: String?
        var variants: [[UInt8]?]
        var code: DNSResponseCode
        var truncated: Bool
    }

    private var answers: [[UInt8]: CachedAnswer] = [:]
    private var cachedBytes = 0
    static let maxCachedAnswers = 10_000
    /// Bytes of kept answers at most (all are dropped past it, and made again as asked).
    static let maxCachedBytes = 32 << 20
    /// Rotations kept per answer: past it, the first `maxVariants` orders are served in turn.
    static let maxVariants = 16
    /// A query longer than this is answered but not kept (a key of its own per padding).
    static let maxKeyBytes = 300

    /// The response to one message, at most `limit` bytes (nil: no answer at all).
    func respond(to message: UnsafeBufferPointer<UInt8>, limit: Int) -> [UInt8]? {
        guard message.count >= 12 else {
            dropped += 1
            return nil
        }
        var key = [UInt8](repeating: limit < 65_535 ? 0 : 1, count: 1)
        if message.count <= Self.maxKeyBytes { key.append(contentsOf: UnsafeBufferPointer(rebasing: message[2...])) }
        let index = service.changeIndex
        let rules = rulesGeneration()
        if key.count > 1, let cached = answers[key], cached.index == index, cached.rules == rules {
            var variant = 0
            if let label = cached.label {
                let rotation = rotations[label, default: 0]
                rotations[label] = rotation &+ 1
                variant = rotation % cached.variants.count
            }
            var bytes = cached.variants[variant] ?? make(message, limit: limit, rotation: variant).bytes
            if cached.variants[variant] == nil {
                answers[key]?.variants[variant] = bytes
                cachedBytes += bytes.count
            }
            bytes[0] = message[0]
            bytes[1] = message[1]
            answered[cached.code, default: 0] += 1
            if cached.truncated { truncated += 1 }
            return bytes
        }
        var label: String?
        var rotation = 0
        let made: (bytes: [UInt8], code: DNSResponseCode, truncated: Bool, answers: Int, cacheable: Bool)
        if case .success(let query) = DNSReader.parseQuery(message),
           case .service(let name, _, _)? = zone.target(of: query.question.name)?.target,
           reachable(name)?.isEmpty == false {
            label = name
            rotation = rotations[name, default: 0]
            rotations[name] = rotation &+ 1
        }
        made = make(message, limit: limit, rotation: rotation)
        guard let bytes = made.bytes.isEmpty ? nil : made.bytes else {
            dropped += 1
            return nil
        }
        answered[made.code, default: 0] += 1
        if made.truncated { truncated += 1 }
        if made.cacheable, key.count > 1 {
            if answers.count >= Self.maxCachedAnswers || cachedBytes > Self.maxCachedBytes {
                answers.removeAll(keepingCapacity: true)
                cachedBytes = 0
            }
            let count = label == nil ? 1 : min(Self.maxVariants, max(1, made.answers))
            var variants = [[UInt8]?](repeating: nil, count: count)
            if rotation % max(1, made.answers) < count { variants[rotation % max(1, made.answers)] = bytes }
            cachedBytes += bytes.count + key.count
            answers[key] = CachedAnswer(index: index, rules: rules, label: count > 1 ? label : nil, variants: variants, code: made.code,
                                        truncated: made.truncated)
        }
        return bytes
    }

    /// The services a DNS label names: those that lower-case to it, are DNS labels themselves
    /// (only those can be asked for), and may be listed.
    private func reachable(_ label: String) -> [String]? {
        servicesByLabel.names(lowercased: label)?.filter { DNSZone.isReachable($0) && mayList($0) }
    }

    /// The answer to a message with this rotation; empty bytes: none (drop it). Cacheable:
    /// a query read whole, answered NOERROR or NXDOMAIN.
    private func make(_ message: UnsafeBufferPointer<UInt8>, limit: Int, rotation: Int)
        -> (bytes: [UInt8], code: DNSResponseCode, truncated: Bool, answers: Int, cacheable: Bool) {
        let response: DNSResponse
        var size = limit
        var cacheable = false
        switch DNSReader.parseQuery(message) {
        case .success(let query):
            let now = Clock.monotonicNow()
            response = zone.answer(query, rotation: rotation) { [self] label in
                guard let names = reachable(label), !names.isEmpty else { return nil }
                return service.read { registry in names.flatMap { registry.instances(ofService: $0, now: now) } }
            }
            if limit < 65_535 { size = min(limit, Int(query.ednsPayloadSize ?? 512), Int(DNSZone.udpPayloadSize)) }
            size = max(size, 512)
            cacheable = response.code == .noError || response.code == .nameError
        case .failure(.drop):
            return ([], .noError, false, 0, false)
        case .failure(.answer(let id, let opcode, let recursionDesired, let code)):
            var header = DNSResponse(id: id)
            header.opcode = opcode
            header.recursionDesired = recursionDesired
            header.code = code
            header.authoritative = false
            response = header
        }
        let (bytes, cut) = DNSWriter.encode(response, limit: min(size, limit))
        return (bytes, response.code, cut, response.answers.count, cacheable)
    }

    private func readDatagrams() {
        for _ in 0..<Self.packetsPerCallback {
            var peer = sockaddr_storage()
            var peerLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let count = buffer.withUnsafeMutableBytes { bytes in
                withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(udpSocket, bytes.baseAddress, bytes.count, 0, $0, &peerLength) }
                }
            }
            guard count >= 0 else { return }  // EAGAIN: the socket is empty (or an error to ignore)
            let answer = buffer.withUnsafeBufferPointer { respond(to: UnsafeBufferPointer(rebasing: $0[..<count]), limit: 4096) }
            guard let answer else { continue }
            let sent = answer.withUnsafeBytes { bytes in
                withUnsafePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(udpSocket, bytes.baseAddress, bytes.count, 0, $0, peerLength) }
                }
            }
            if sent < 0 { dropped += 1 }
        }
        // More may be waiting: libevent calls again on its next pass, after other sockets had theirs.
    }

    // MARK: TCP

    private func accepted(_ socket: Int32) {
        guard connections.count < Self.maxTCPConnections, let base = evconnlistener_get_base(listener),
              let events = bufferevent_socket_new(base, socket, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)) else {
            Glibc.close(socket)
            dropped += 1
            if let suppressed = refusalLog.admit(now: Clock.monotonicNow()) {
                logger.warn("dns_tcp_refused", ["connections": connections.count, "limit": Self.maxTCPConnections, "refusals_not_logged": suppressed,
                                                "note": "DNS over TCP is at its connection cap; clients retry, or ask over UDP"])
            }
            return
        }
        let connection = TCPConnection(events: events, server: self)
        connections[ObjectIdentifier(connection)] = connection
        var idle = timeval(tv_sec: Self.tcpIdleSeconds, tv_usec: 0)
        bufferevent_set_timeouts(events, &idle, &idle)
        let context = Unmanaged.passUnretained(connection).toOpaque()
        bufferevent_setcb(events, { _, context in
            Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().readable()
        }, { _, context in
            // The client read what was queued: take its waiting queries again.
            Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue().drained()
        }, { _, what, context in
            let connection = Unmanaged<TCPConnection>.fromOpaque(context!).takeUnretainedValue()
            if what & Int16(BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT) != 0 { connection.server?.finish(connection) }
        }, context)
        bufferevent_enable(events, Int16(EV_READ | EV_WRITE))
    }

    fileprivate func finish(_ connection: TCPConnection) {
        connection.close()
        connections[ObjectIdentifier(connection)] = nil
    }

    fileprivate func answerTCP(_ message: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        tcpQueries += 1
        return respond(to: message, limit: 65_535)
    }

    // MARK: Addresses

    private static func socketAddress(host: String, port: UInt16, into storage: inout sockaddr_storage, length: inout socklen_t) -> Bool {
        if let bytes = IPAddressText.ipv4(Substring(host)) {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    address.pointee.sin_family = sa_family_t(AF_INET)
                    address.pointee.sin_port = port.bigEndian
                    address.pointee.sin_addr.s_addr = (UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])).bigEndian
                }
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            return true
        }
        if let bytes = IPAddressText.ipv6(Substring(host)) {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    address.pointee.sin6_family = sa_family_t(AF_INET6)
                    address.pointee.sin6_port = port.bigEndian
                    withUnsafeMutableBytes(of: &address.pointee.sin6_addr) { raw in
                        for (index, byte) in bytes.enumerated() { raw[index] = byte }
                    }
                }
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            return true
        }
        return false
    }

    private static func setPort(_ port: UInt16, in storage: inout sockaddr_storage) {
        withUnsafeMutablePointer(to: &storage) { pointer in
            if Int32(pointer.pointee.ss_family) == AF_INET {
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port = port.bigEndian }
            } else {
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_port = port.bigEndian }
            }
        }
    }
}

/// One DNS-over-TCP client: two-byte lengths before each message, both ways.
private final class TCPConnection {
    private var events: OpaquePointer?
    weak var server: DNSServer?

    init(events: OpaquePointer, server: DNSServer) {
        self.events = events
        self.server = server
    }

    /// Answers queued for a client at most, before its queries wait for it to read them.
    static let maxQueuedBytes = 128 * 1024

    func drained() {
        guard let events else { return }
        bufferevent_enable(events, Int16(EV_READ))
        readable()
    }

    func readable() {
        guard let events, let server, let input = bufferevent_get_input(events), let output = bufferevent_get_output(events) else { return }
        // Every whole message read so far (a read brings at most one bufferevent read's bytes),
        // while the client keeps up: past `maxQueuedBytes` of unread answers, reading stops
        // until they are written (the write callback comes when the output is empty).
        while true {
            if evbuffer_get_length(output) > Self.maxQueuedBytes {
                bufferevent_disable(events, Int16(EV_READ))
                return
            }
            let available = evbuffer_get_length(input)
            guard available >= 2, let head = evbuffer_pullup(input, 2) else { return }
            let length = Int(head[0]) << 8 | Int(head[1])
            guard available >= 2 + length else { return }
            guard length > 0, let whole = evbuffer_pullup(input, 2 + length) else {
                server.finish(self)
                return
            }
            let answer = server.answerTCP(UnsafeBufferPointer(start: whole + 2, count: length))
            evbuffer_drain(input, 2 + length)
            guard let answer else { continue }
            var framed = [UInt8(answer.count >> 8), UInt8(answer.count & 0xFF)]
            framed += answer
            framed.withUnsafeBytes { _ = bufferevent_write(events, $0.baseAddress, $0.count) }
        }
    }

    func close() {
        if let events { bufferevent_free(events) }
        events = nil
    }
}
