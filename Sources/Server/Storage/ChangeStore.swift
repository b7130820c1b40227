import Registry

/// Where the registry's changes are made durable: "make these changes durable and tell me
/// when". `RegistryService` owns the one store and calls it once per loop turn, from the
/// end-of-turn step, with every change the turn made.
///
/// Two stores exist: `MemoryStore` (`--in-memory`: everything is committed at once) and
/// `LocalLogStore` (the data directory: the log, its three fsync policies and snapshots).
///
/// **Apply first, then commit** is how both work: the core applies a change as the request
/// asks, the turn's journal goes to the store, and a writer whose outcome is
/// `.respondWhenCommitted` is answered when the store says so; if the store cannot take the
/// batch, the service takes it back in the core (`Registry.revert`) and each writer hears
/// 503. Readers may see a change for the moment between apply and a failed write, never
/// after it.
///
/// **Commit first, then apply** is how cluster mode works (`--etcd`), and it does not go
/// through this seam: there a write's outcome is decided per writer (judged against the
/// mirror, sent with a compare, judged again when another replica won), which a turn-level
/// "make these durable" cannot say. `RegistryService+Cluster` and `ClusterStore` do it; the
/// store here is then `MemoryStore` (the core journals nothing in a mirror).
protocol ChangeStore: AnyObject {
    /// Takes a turn's changes (possibly none: a store may have records of its own to write,
    /// or the change index moved without a journal entry).
    func submit(_ changes: [JournalChange], changeIndex: UInt64, now: Instant) -> SubmitOutcome

    /// After `.failed`: the service has taken `changes` back in the core, whose change index
    /// is now `changeIndex`. A store records whatever it owes the disk because of that.
    func tookBack(_ changes: [JournalChange], changeIndex: UInt64, now: Instant)

    /// Set by the service: tickets handed out by `submit` are committed, in order, up to and
    /// including the one given.
    var onCommitted: ((CommitTicket) -> Void)? { get set }

    /// The service's durable state, read by a store that takes snapshots of it.
    var source: (any DurableStateSource)? { get set }

    /// The first stop signal came: acknowledge what can be while the loop still runs.
    func prepareToStop()

    /// After the loop: makes everything durable and closes. False when that failed (the
    /// process exits non-zero: acknowledged changes may not be on disk).
    func finish() -> Bool

    /// For `/metrics`; nil when the store keeps nothing (`--in-memory`).
    var stats: StoreStats? { get }
}

/// What `submit` says about a turn's changes.
enum SubmitOutcome: Equatable {
    /// Durable as the policy defines it: answer the writers now.
    case committed
    /// Answer the writers when `onCommitted` reaches this ticket.
    case pending(CommitTicket)
    /// Not durable and never will be: take the changes back and answer 503 with this message.
    case failed(String)
}

/// A place in the store's commit order (for the local log: a byte position).
struct CommitTicket: Comparable, Hashable {
    let position: UInt64

    static func < (left: CommitTicket, right: CommitTicket) -> Bool { left.position < right.position }
}

/// What a snapshot reads from the service, a slice of slots per loop turn.
protocol DurableStateSource: AnyObject {
    var changeIndex: UInt64 { get }
    var instanceCount: Int { get }
    var slotCount: Int { get }
    func durableStates(inSlots range: Range<Int>) -> [InstanceState]
}

/// What `/metrics` reports of a store.
struct StoreStats {
    var logBytes: Int
    var unsyncedBytes: UInt64
    var writeErrors: UInt64
    var snapshots: UInt64
    var snapshotFailures: UInt64
}
