/// A journal entry and what it replaced: the instance's durable state before the change,
/// or nil when the change created it. `Registry.revert(_:now:)` uses it to take back
/// changes that could not be written.
public struct JournalChange: Sendable {
    public let entry: JournalEntry
    public let prior: InstanceState?
    /// A removal because heartbeats stopped, which `Registry.revert(_:now:)` leaves alone.
    public let isExpiry: Bool

    public init(_ entry: JournalEntry, prior: InstanceState?, isExpiry: Bool = false) {
        self.entry = entry
        self.prior = prior
        self.isExpiry = isExpiry
    }
}
