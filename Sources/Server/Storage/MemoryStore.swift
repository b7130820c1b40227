import Registry

/// `--in-memory`: nothing is kept, so every turn is committed as it ends. The core is not
/// even asked to journal (`RegistryPolicy.journaling` is off), so `submit` sees no changes.
final class MemoryStore: ChangeStore {
    var onCommitted: ((CommitTicket) -> Void)?
    weak var source: (any DurableStateSource)?

    func submit(_ changes: [JournalChange], changeIndex: UInt64, now: Instant) -> SubmitOutcome { .committed }
    func tookBack(_ changes: [JournalChange], changeIndex: UInt64, now: Instant) {}
    func prepareToStop() {}
    func finish() -> Bool { true }
    var stats: StoreStats? { nil }
}
