/// An instance's identity: its service's slot and its id.
struct InstanceKey: Hashable {
    var service: Int32
    var id: String
}
