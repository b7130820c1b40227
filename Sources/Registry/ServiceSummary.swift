/// One service in the listing.
public struct ServiceSummary: Equatable, Sendable {
    public let name: String
    /// Instances whose deadline has not passed (or that protection keeps), by status.
    public let instanceCount: Int
    public let countsByStatus: [InstanceStatus: Int]
    /// Every tag any of its instances carries, sorted.
    public let tags: [String]
    public let changeIndex: UInt64
}
