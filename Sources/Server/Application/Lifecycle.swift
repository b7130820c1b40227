#if canImport(Glibc)
import Glibc
#endif

/// Stop signals and the shutdown sequence.
///
/// SIGTERM (what Kubernetes and service managers send) starts the grace period: `/ready` turns
/// 503 at once (so load balancers stop sending) while every request is still served. When it
/// ends, at a second signal, or at once for SIGINT (Ctrl-C: a person at a terminal wants it
/// gone now), the registry closes: the store is asked to acknowledge what it can,
/// the listeners stop accepting, held reads are answered with the current state, and the
/// loop ends once in-flight replies had `drainTimeout` to go out.
final class Lifecycle {
    /// How long in-flight replies get to drain after the listeners close.
    static let drainTimeout: Duration = .milliseconds(250)

    private let loop: EventLoop
    private let service: RegistryService
    private let frontEnds: [HTTPFrontEnd]
    private let heldRequests: () -> Int
    private let shutdownGrace: Duration
    private let logger: Logger
    private var graceTimer: LoopTimer?
    private(set) var draining = false
    private(set) var closing = false

    init(loop: EventLoop, service: RegistryService, frontEnds: [HTTPFrontEnd], heldRequests: @escaping () -> Int,
         shutdownGrace: Duration, logger: Logger, onReload: (() -> Void)? = nil) {
        self.loop = loop
        self.service = service
        self.frontEnds = frontEnds
        self.heldRequests = heldRequests
        self.shutdownGrace = shutdownGrace
        self.logger = logger
        graceTimer = loop.timer { [unowned self] in close() }
        for signal in [SIGTERM, SIGINT] {
            loop.onSignal(signal) { [unowned self] in stop(signal: $0) }
        }
        // Their default action ends the process at once: no drain, no last fsync, no log line.
        // SIGHUP reloads what can be reloaded (the ACL file) without dropping a connection.
        loop.onSignal(SIGHUP) { [logger] _ in
            logger.info("reloading", ["signal": "SIGHUP"])
            onReload?()
        }
        for (signal, name) in [(SIGUSR1, "SIGUSR1"), (SIGUSR2, "SIGUSR2")] {
            loop.onSignal(signal) { [logger] _ in
                logger.info("signal_ignored", ["signal": name, "note": "send SIGTERM or SIGINT to stop the registry"])
            }
        }
    }

    private func stop(signal: Int32) {
        let name = signal == SIGTERM ? "SIGTERM" : signal == SIGINT ? "SIGINT" : String(signal)
        guard !draining, shutdownGrace > .zero, signal != SIGINT else {
            logger.info("stopping", ["signal": name, "grace": draining ? "cut short" : "none"])
            close()
            return
        }
        draining = true
        service.isDraining = true
        logger.info("draining", ["signal": name, "grace": shutdownGrace.secondsText,
                                 "note": "/ready answers 503; requests are served until the grace period ends or another signal (Ctrl-C) comes"])
        logger.flush()
        graceTimer?.schedule(after: shutdownGrace)
    }

    private func close() {
        guard !closing else { return }
        closing = true
        draining = true
        graceTimer?.cancel()
        logger.info("closing", ["held_requests": heldRequests()])
        logger.flush()
        service.prepareToStop()
        for frontEnd in frontEnds { frontEnd.stopAccepting() }
        loop.exit(after: Self.drainTimeout)
    }
}
