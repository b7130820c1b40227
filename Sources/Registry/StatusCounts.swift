/// Instances per status in four integers: a dictionary would hash on every change.
struct StatusCounts {
    private var up = 0
    private var starting = 0
    private var down = 0
    private var outOfService = 0

    subscript(status: InstanceStatus) -> Int {
        get {
            switch status {
            case .up: return up
            case .starting: return starting
            case .down: return down
            case .outOfService: return outOfService
            }
        }
        set {
            switch status {
            case .up: up = newValue
            case .starting: starting = newValue
            case .down: down = newValue
            case .outOfService: outOfService = newValue
            }
        }
    }

    var nonZero: [InstanceStatus: Int] {
        var result: [InstanceStatus: Int] = [:]
        for status in InstanceStatus.allCases where self[status] != 0 { result[status] = self[status] }
        return result
    }
}
