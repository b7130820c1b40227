/// What the router decided for one request.
enum Handling {
    /// Answer now.
    case respond(Response)
    /// A write's answer, given once the turn's changes are committed (`RegistryService.whenCommitted`),
    /// or a 503 instead if they could not be.
    case respondWhenCommitted(Response)
    /// A blocking query whose index is current: hold the request until the target
    /// changes or `wait` passes, then answer with the current state.
    case park(WatchTarget, wait: Duration)
    /// A Server-Sent Events stream of the target's state, one event per change.
    case stream(WatchTarget)
}
