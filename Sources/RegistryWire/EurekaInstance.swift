import JSON
import Registry

/// An instance as Eureka's REST API carries it (`{"instance":{…}}` in JSON, `<instance>` in
/// XML): read from a registration, written in every listing. Readers are lenient where
/// Eureka's clients differ (numbers or strings, `overriddenStatus` or `overriddenstatus`,
/// nulls), strict where a wrong shape would register something else than was meant.
public struct EurekaInstance: Equatable, Sendable {
    public var instanceId: String
    public var hostName: String
    /// Upper-cased, as Eureka keeps it.
    public var app: String
    public var ipAddr: String
    /// `UP`, `DOWN`, `STARTING`, `OUT_OF_SERVICE`, `UNKNOWN`.
    public var status: String
    public var overriddenStatus = "UNKNOWN"
    public var port = 7001
    public var portEnabled = true
    public var securePort = 7002
    public var securePortEnabled = false
    public var countryId = 1
    public var dataCenterName = "MyOwn"
    public var dataCenterClass = EurekaInstance.defaultDataCenterClass
    public var renewalIntervalInSecs = 30
    public var durationInSecs = 90
    public var registrationTimestamp: Int64 = 0
    public var lastRenewalTimestamp: Int64 = 0
    public var evictionTimestamp: Int64 = 0
    public var serviceUpTimestamp: Int64 = 0
    /// In order; a key once.
    public var metadata: [MetadataEntry] = []
    public var homePageUrl = ""
    public var statusPageUrl = ""
    public var healthCheckUrl = ""
    public var secureHealthCheckUrl = ""
    public var vipAddress = ""
    public var secureVipAddress = ""
    public var lastUpdatedTimestamp: Int64 = 0
    public var lastDirtyTimestamp: Int64 = 0
    /// `ADDED`, `MODIFIED`, `DELETED` (in a delta).
    public var actionType: String?

    public static let defaultDataCenterClass = "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"
    public static let statuses = ["UP", "DOWN", "STARTING", "OUT_OF_SERVICE", "UNKNOWN"]

    public init(instanceId: String, hostName: String, app: String, ipAddr: String, status: String) {
        self.instanceId = instanceId
        self.hostName = hostName
        self.app = app
        self.ipAddr = ipAddr
        self.status = status
    }

    // MARK: Reading

    public struct Problem: Error, Equatable, Sendable {
        public let message: String
        public init(_ message: String) { self.message = message }
    }

    /// A registration body, JSON or XML by its first byte; Eureka's checks and words, in
    /// its order (`Missing instanceId` only when there is no `hostName` to default to).
    public static func decodeRegistration(_ body: UnsafeBufferPointer<UInt8>) -> Result<EurekaInstance, Problem> {
        var start = 0
        while start < body.count, [0x20, 0x09, 0x0A, 0x0D].contains(body[start]) { start += 1 }
        guard start < body.count else { return .failure(Problem("Missing instance: the body is empty")) }
        if body[start] == UInt8(ascii: "<") {
            switch XMLElement.parse(body) {
            case .success(let root):
                guard root.name == "instance" else { return .failure(Problem("Request decode failed: the root element is <\(root.name)>, not <instance>")) }
                return fromXML(root)
            case .failure(let failure):
                return .failure(Problem("Request decode failed: \(failure.message) at byte \(failure.offset)"))
            }
        }
        let value: JSONValue
        do throws(JSONParser.Failure) {
            value = try JSONParser.parse(body)
        } catch {
            return .failure(Problem("Request decode failed: \(error.message) at byte \(error.offset)"))
        }
        guard let instance = value[member: "instance"] else {
            return .failure(Problem("Request decode failed: the body must be {\"instance\":{…}}"))
        }
        return fromJSON(instance)
    }

    static func fromJSON(_ value: JSONValue) -> Result<EurekaInstance, Problem> {
        guard case .object = value else { return .failure(Problem("Request decode failed: \"instance\" must be an object")) }
        func text(_ name: String) -> String? {
            switch value[member: name] {
            case .string(let text)?: return text
            case .number(let number)?: return number.rounded() == number && abs(number) < 1e18 ? String(Int64(number)) : String(number)
            case .bool(let flag)?: return flag ? "true" : "false"
            default: return nil
            }
        }
        func port(_ name: String) -> (Int?, Bool?) {
            switch value[member: name] {
            case .object?:
                let inner = value[member: name]!
                var number: Int?
                switch inner[member: "$"] {
                case .number(let n)?: number = Int(exactly: n)
                case .string(let s)?: number = Int(s)
                default: break
                }
                var enabled: Bool?
                switch inner[member: "@enabled"] {
                case .string(let s)?: enabled = s == "true"
                case .bool(let b)?: enabled = b
                default: break
                }
                return (number, enabled)
            case .number(let n)?: return (Int(exactly: n), nil)
            default: return (nil, nil)
            }
        }
        var fields = Fields()
        fields.instanceId = text("instanceId")
        fields.hostName = text("hostName")
        fields.app = text("app")
        fields.ipAddr = text("ipAddr")
        fields.status = text("status")
        fields.overriddenStatus = text("overriddenStatus") ?? text("overriddenstatus")
        (fields.port, fields.portEnabled) = port("port")
        (fields.securePort, fields.securePortEnabled) = port("securePort")
        fields.countryId = text("countryId").flatMap { Int($0) }
        if case .object? = value[member: "dataCenterInfo"], let info = value[member: "dataCenterInfo"] {
            fields.hasDataCenterInfo = true
            if case .string(let name)? = info[member: "name"] { fields.dataCenterName = name }
            if case .string(let type)? = info[member: "@class"] { fields.dataCenterClass = type }
        }
        if case .object? = value[member: "leaseInfo"], let lease = value[member: "leaseInfo"] {
            if case .number(let n)? = lease[member: "renewalIntervalInSecs"] { fields.renewal = Int(exactly: n) }
            if case .number(let n)? = lease[member: "durationInSecs"] { fields.duration = Int(exactly: n) }
        }
        if case .object(let members)? = value[member: "metadata"] {
            for member in members where member.name != "@class" {
                if case .string(let text) = member.value { fields.metadata.append(MetadataEntry(member.name, text)) }
            }
        }
        for (name, path) in [("homePageUrl", \Fields.homePageUrl), ("statusPageUrl", \Fields.statusPageUrl), ("healthCheckUrl", \Fields.healthCheckUrl),
                             ("secureHealthCheckUrl", \Fields.secureHealthCheckUrl), ("vipAddress", \Fields.vipAddress),
                             ("secureVipAddress", \Fields.secureVipAddress)] {
            fields[keyPath: path] = text(name)
        }
        fields.lastDirtyTimestamp = text("lastDirtyTimestamp").flatMap { Int64($0) }
        return fields.validated()
    }

    static func fromXML(_ element: XMLElement) -> Result<EurekaInstance, Problem> {
        var fields = Fields()
        fields.instanceId = element.childText("instanceId")
        fields.hostName = element.childText("hostName")
        fields.app = element.childText("app")
        fields.ipAddr = element.childText("ipAddr")
        fields.status = element.childText("status")
        fields.overriddenStatus = element.childText("overriddenstatus") ?? element.childText("overriddenStatus")
        if let port = element.child("port") {
            fields.port = Int(port.text.trimmingXMLSpace)
            fields.portEnabled = port.attribute("enabled").map { $0 != "false" }
        }
        if let port = element.child("securePort") {
            fields.securePort = Int(port.text.trimmingXMLSpace)
            fields.securePortEnabled = port.attribute("enabled").map { $0 == "true" }
        }
        fields.countryId = element.childText("countryId").flatMap { Int($0) }
        if let info = element.child("dataCenterInfo") {
            fields.hasDataCenterInfo = true
            fields.dataCenterName = info.childText("name")
            fields.dataCenterClass = info.attribute("class")
        }
        if let lease = element.child("leaseInfo") {
            fields.renewal = lease.childText("renewalIntervalInSecs").flatMap { Int($0) }
            fields.duration = lease.childText("durationInSecs").flatMap { Int($0) }
        }
        for entry in element.child("metadata")?.children ?? [] { fields.metadata.append(MetadataEntry(entry.name, entry.text.trimmingXMLSpace)) }
        fields.homePageUrl = element.childText("homePageUrl")
        fields.statusPageUrl = element.childText("statusPageUrl")
        fields.healthCheckUrl = element.childText("healthCheckUrl")
        fields.secureHealthCheckUrl = element.childText("secureHealthCheckUrl")
        fields.vipAddress = element.childText("vipAddress")
        fields.secureVipAddress = element.childText("secureVipAddress")
        fields.lastDirtyTimestamp = element.childText("lastDirtyTimestamp").flatMap { Int64($0) }
        return fields.validated()
    }

    /// What a body gave, before Eureka's checks.
    struct Fields {
        var instanceId: String?
        var hostName: String?
        var app: String?
        var ipAddr: String?
        var status: String?
        var overriddenStatus: String?
        var port: Int?
        var portEnabled: Bool?
        var securePort: Int?
        var securePortEnabled: Bool?
        var countryId: Int?
        var hasDataCenterInfo = false
        var dataCenterName: String?
        var dataCenterClass: String?
        var renewal: Int?
        var duration: Int?
        var metadata: [MetadataEntry] = []
        var homePageUrl: String?
        var statusPageUrl: String?
        var healthCheckUrl: String?
        var secureHealthCheckUrl: String?
        var vipAddress: String?
        var secureVipAddress: String?
        var lastDirtyTimestamp: Int64?

        func validated() -> Result<EurekaInstance, Problem> {
            let hostName = self.hostName ?? ""
            let instanceId = (self.instanceId?.isEmpty == false ? self.instanceId : nil) ?? hostName
            guard !instanceId.isEmpty else { return .failure(Problem("Missing instanceId")) }
            guard !hostName.isEmpty else { return .failure(Problem("Missing hostname")) }
            guard let ipAddr, !ipAddr.isEmpty else { return .failure(Problem("Missing ip address")) }
            guard let app, !app.isEmpty else { return .failure(Problem("Missing appName")) }
            guard hasDataCenterInfo else { return .failure(Problem("Missing dataCenterInfo")) }
            guard let dataCenterName, !dataCenterName.isEmpty else { return .failure(Problem("Missing dataCenterInfo Name")) }
            var instance = EurekaInstance(instanceId: instanceId, hostName: hostName, app: app.uppercased(), ipAddr: ipAddr,
                                          status: (status ?? "UP").uppercased())
            guard EurekaInstance.statuses.contains(instance.status) else {
                return .failure(Problem("Invalid status \(Violation.quoted(status ?? "")); Eureka's are \(EurekaInstance.statuses.joined(separator: ", "))"))
            }
            if let overriddenStatus { instance.overriddenStatus = overriddenStatus.uppercased() }
            if let port { instance.port = port }
            if let portEnabled { instance.portEnabled = portEnabled }
            if let securePort { instance.securePort = securePort }
            if let securePortEnabled { instance.securePortEnabled = securePortEnabled }
            for (value, name) in [(instance.port, "port"), (instance.securePort, "securePort")] where !(0...65_535).contains(value) {
                return .failure(Problem("Invalid \(name) \(value): a port is 0 to 65535"))
            }
            if let countryId { instance.countryId = countryId }
            instance.dataCenterName = dataCenterName
            if let dataCenterClass { instance.dataCenterClass = dataCenterClass }
            if let renewal, renewal > 0 { instance.renewalIntervalInSecs = renewal }
            if let duration, duration > 0 { instance.durationInSecs = duration }
            var seen = Set<String>()
            instance.metadata = metadata.filter { seen.insert($0.key).inserted }
            instance.homePageUrl = homePageUrl ?? ""
            instance.statusPageUrl = statusPageUrl ?? ""
            instance.healthCheckUrl = healthCheckUrl ?? ""
            instance.secureHealthCheckUrl = secureHealthCheckUrl ?? ""
            instance.vipAddress = vipAddress ?? ""
            instance.secureVipAddress = secureVipAddress ?? ""
            instance.lastDirtyTimestamp = lastDirtyTimestamp ?? 0
            return .success(instance)
        }
    }

    // MARK: The native registration

    /// The scheme and port the native address uses: `https` with the secure port when only
    /// it is enabled, else `http` with the port.
    public var nativeAddress: String {
        let host = ipAddr.contains(":") && !ipAddr.hasPrefix("[") ? "[" + ipAddr + "]" : ipAddr
        if securePortEnabled && !portEnabled { return "https://\(host):\(securePort)" }
        return "http://\(host):\(port)"
    }

    /// The native service: the app name lower-cased.
    public var serviceName: String { app.lowercased() }

    /// `UNKNOWN` has no native status; it is taken as `STARTING` (registered, not routable).
    public static func nativeStatus(_ status: String) -> InstanceStatus? {
        status == "UNKNOWN" ? .starting : InstanceStatus(rawValue: status)
    }

    /// The metadata the native rules accept (Eureka's `@class` markers and keys that are not
    /// tokens are left out; `EurekaInstance.droppedMetadata` says which).
    public var nativeMetadata: [MetadataEntry] {
        metadata.filter { Violation.checkMetadata([$0]) == nil }.sorted { $0.key < $1.key }
    }

    public var droppedMetadata: [String] {
        metadata.filter { Violation.checkMetadata([$0]) != nil }.map(\.key)
    }
}
