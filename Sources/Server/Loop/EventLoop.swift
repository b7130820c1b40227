#if canImport(Glibc)
import Glibc
#endif
import CLibevent

/// The one event loop: a libevent base run by one thread, and the end-of-turn step.
///
/// Every registry state change happens in a callback of this loop, so the core needs no
/// locks. Whatever a callback does (an HTTP request, a timer, later a DNS query, a health
/// check or an etcd watch event), work that must follow a change is not done in the callback
/// but asked for with `scheduleEndOfTurn()`: the steps registered with `onEndOfTurn` then run
/// once, after every callback libevent already has due in this pass, as Redis's
/// `beforeSleep` does. A step that causes more work may schedule again; the steps then run
/// again before the loop polls.
final class EventLoop {
    struct StartError: Error {
        let message: String
    }

    let base: OpaquePointer
    private var endOfTurnEvent: OpaquePointer?
    private var endOfTurnSteps: [() -> Void] = []
    private var endOfTurnScheduled = false
    private var timers: [LoopTimer] = []
    private var signalEvents: [OpaquePointer] = []
    private var signalHandlers: [Int32: (Int32) -> Void] = [:]

    init() throws(StartError) {
        let config = event_config_new()
        // One thread owns the base, so libevent's internal locking is pure cost.
        event_config_set_flag(config, Int32(EVENT_BASE_FLAG_NOLOCK.rawValue))
        // Batch epoll interest changes until the loop next polls, so that a change undone in
        // the same turn (a reply's write interest, added and dropped when it is written at
        // once) costs no system call. libevent warns that this is unsafe when a closed socket's
        // file stays open elsewhere (dup, fork, descriptors passed to another process): epoll
        // would keep watching it. The server does none of these; keep it that way.
        event_config_set_flag(config, Int32(EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST.rawValue))
        guard let base = event_base_new_with_config(config) else {
            event_config_free(config)
            throw StartError(message: "could not create the libevent event base")
        }
        event_config_free(config)
        self.base = base
        endOfTurnEvent = event_new(base, -1, 0, { _, _, context in
            guard let context else { return }
            Unmanaged<EventLoop>.fromOpaque(context).takeUnretainedValue().runEndOfTurn()
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Runs until `exit(after:)` or until nothing is left to wait for.
    func run() {
        event_base_dispatch(base)
    }

    /// Ends `run()` once `delay` has passed (what is in flight meanwhile is served).
    func exit(after delay: Duration) {
        var interval = timeval(tv_sec: delay.timeval.seconds, tv_usec: delay.timeval.microseconds)
        event_base_loopexit(base, &interval)
    }

    // MARK: End of turn

    /// Adds a step to the end of every turn that asks for it, after the steps added before.
    func onEndOfTurn(_ step: @escaping () -> Void) {
        endOfTurnSteps.append(step)
    }

    /// Asks for the end-of-turn steps to run once this pass's callbacks are done. Cheap to call
    /// often: one activation per turn.
    func scheduleEndOfTurn() {
        guard !endOfTurnScheduled, let endOfTurnEvent else { return }
        endOfTurnScheduled = true
        event_active(endOfTurnEvent, 0, 0)
    }

    private func runEndOfTurn() {
        endOfTurnScheduled = false
        for step in endOfTurnSteps { step() }
    }

    // MARK: Timers and signals

    /// A timer on this loop that calls `fire` each time it expires; freed with the loop.
    func timer(persistent: Bool = false, _ fire: @escaping () -> Void) -> LoopTimer {
        let timer = LoopTimer(base: base, persistent: persistent, fire: fire)
        timers.append(timer)
        return timer
    }

    /// Calls `handler` on the loop when `signal` arrives.
    func onSignal(_ signal: Int32, _ handler: @escaping (Int32) -> Void) {
        signalHandlers[signal] = handler
        guard let event = CLibevent_evsignal_new(base, signal, { signal, _, context in
            guard let context else { return }
            let loop = Unmanaged<EventLoop>.fromOpaque(context).takeUnretainedValue()
            loop.signalHandlers[signal]?(signal)
        }, Unmanaged.passUnretained(self).toOpaque()) else { return }
        event_add(event, nil)
        signalEvents.append(event)
    }

    /// Frees every event the loop made, then the base: the last thing before exit, after
    /// evhttp and the transport have freed theirs.
    func close() {
        for timer in timers { timer.free() }
        timers.removeAll()
        for event in signalEvents { event_free(event) }
        signalEvents.removeAll()
        if let endOfTurnEvent { event_free(endOfTurnEvent) }
        endOfTurnEvent = nil
        endOfTurnSteps.removeAll()
        signalHandlers.removeAll()
        event_base_free(base)
    }
}

/// A libevent timer that calls a closure. Made by `EventLoop.timer`, which frees it.
final class LoopTimer {
    private var event: OpaquePointer?
    private let fire: () -> Void

    fileprivate init(base: OpaquePointer, persistent: Bool, fire: @escaping () -> Void) {
        self.fire = fire
        event = event_new(base, -1, persistent ? Int16(EV_PERSIST) : 0, { _, _, context in
            guard let context else { return }
            Unmanaged<LoopTimer>.fromOpaque(context).takeUnretainedValue().fire()
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Fires once `delay` has passed (and then every `delay`, if persistent). A zero delay
    /// fires after the loop next polls, unlike `activate()`.
    func schedule(after delay: Duration) {
        guard let event else { return }
        let value = delay.timeval
        var interval = timeval(tv_sec: value.seconds, tv_usec: value.microseconds)
        event_add(event, &interval)
    }

    /// Fires in this pass of the loop, after the callbacks already due.
    func activate() {
        guard let event else { return }
        event_active(event, 0, 0)
    }

    func cancel() {
        guard let event else { return }
        event_del(event)
    }

    fileprivate func free() {
        if let event { event_free(event) }
        event = nil
    }
}
