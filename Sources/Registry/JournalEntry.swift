/// One durable change, in the order the registry made it. Replaying a journal from an empty
/// registry (or from a snapshot) rebuilds every instance with all its fields.
public enum JournalEntry: Equatable, Sendable {
    /// An instance was registered, or one of its durable fields changed: its whole state.
    case upsert(InstanceState, changeIndex: UInt64)
    /// An instance was deregistered or expired.
    case remove(service: String, id: String, changeIndex: UInt64)
    /// The change index moved past every record before this one without a durable change
    /// (expiry protection starting or lifting, a change taken back): written so that a
    /// restarted registry never hands out an index it already used.
    case indexAdvanced(to: UInt64)

    public var changeIndex: UInt64 {
        switch self {
        case .upsert(_, let index), .remove(_, _, let index), .indexAdvanced(let index): return index
        }
    }
}
