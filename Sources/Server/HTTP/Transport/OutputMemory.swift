/// The bytes of answers waiting in libevent's output buffers, each buffer counted once
/// however many connections hold it by reference (a cached listing sent to 2,000 clients is
/// one listing), with a budget: a client that stops reading holds its last answer, and many
/// such clients with answers made for them alone (`?limit=`, `?pick=`, their streams) would
/// otherwise hold memory without bound until their write timeout.
///
/// Bodies added by reference (`PendingRequest`, `WatchHub`) are retained here while libevent
/// holds them; small bodies are copied and not counted (evhttp keeps at most one answer per
/// connection in flight). Over the budget, the transports close the connections that have
/// been stuck longest until the count is back under it (`Transport.shed`).
///
/// Process-wide: memory is, and libevent's cleanup callbacks carry no context of ours.
enum OutputMemory {
    nonisolated(unsafe) private static var held: [UnsafeRawPointer: (bytes: Int, references: Int)] = [:]
    nonisolated(unsafe) private(set) static var total = 0
    /// `--max-output-bytes`.
    nonisolated(unsafe) static var budget = Int.max
    /// Called (once per excess, until `total` is back under the budget) to shed connections.
    nonisolated(unsafe) static var overBudget: [() -> Void] = []
    nonisolated(unsafe) private static var shedding = false

    static func retain(_ base: UnsafeRawPointer, bytes: Int) {
        if let known = held[base] {
            held[base] = (known.bytes, known.references + 1)
            return
        }
        held[base] = (bytes, 1)
        total += bytes
        if total > budget && !shedding {
            shedding = true
            for shed in overBudget { shed() }
        }
    }

    static func release(_ base: UnsafeRawPointer) {
        guard let known = held[base] else { return }
        if known.references > 1 {
            held[base] = (known.bytes, known.references - 1)
        } else {
            held[base] = nil
            total -= known.bytes
        }
    }

    /// The transports are done shedding: the next excess asks them again.
    static func shed() {
        shedding = false
    }
}
