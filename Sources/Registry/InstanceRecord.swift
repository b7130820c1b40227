/// One instance, stored in a slot of `Registry.instances`. Times are monotonic nanoseconds.
struct InstanceRecord {
    var id: String
    var attributes: InstanceAttributes
    var service: Int32
    /// Index in the service's `order` array.
    var orderPosition: Int32
    /// Kept past its deadline by expiry protection; such an instance is not in the index.
    var isProtected: Bool
    /// In a mirror: its removal has been proposed (its deadline passed on the leader); it
    /// is listed until the removal is committed, but no longer renewed.
    var isExpiring: Bool
    /// `attributes.ttl` in nanoseconds, 0 for the server's, `neverExpires` for none: kept
    /// beside it because every heartbeat needs it, and turning a `Duration` into nanoseconds
    /// costs a division.
    var customTTL: Int64
    var registeredAt: Int64
    var lastHeartbeat: Int64
    var deadline: Int64
    /// The change index of this instance's last visible change.
    var version: UInt64

    init(id: String, attributes: InstanceAttributes, service: Int32, orderPosition: Int32, registeredAt: Int64) {
        self.id = id
        self.attributes = attributes
        self.service = service
        self.orderPosition = orderPosition
        self.isProtected = false
        self.isExpiring = false
        self.customTTL = Self.customTTL(of: attributes)
        self.registeredAt = registeredAt
        self.lastHeartbeat = 0
        self.deadline = 0
        self.version = 0
    }

    static let neverExpires: Int64 = -1

    static func customTTL(of attributes: InstanceAttributes) -> Int64 {
        guard let ttl = attributes.ttl else { return 0 }
        return ttl == InstanceAttributes.noExpiry ? neverExpires : ttl.wholeNanoseconds
    }

    static let vacant = InstanceRecord(id: "", attributes: InstanceAttributes(address: "", weight: 0), service: -1,
                                       orderPosition: -1, registeredAt: 0)
}
