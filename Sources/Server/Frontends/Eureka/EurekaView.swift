import HTTPParsing
import JSON
import Registry
import RegistryWire

/// Instances as Eureka shows them, in its JSON (`Accept` containing `json`) or its XML
/// (otherwise, as Eureka's clients and Prometheus read it): `applications` with
/// `versions__delta` and `apps__hashcode`, `application` with `name`, `instance` with its
/// fields in Eureka's order (`port`'s `$`/`@enabled`, `dataCenterInfo`'s class, `leaseInfo`,
/// `metadata`, the `@Auto` fields as strings, `actionType`).
struct EurekaView {
    var json: Bool

    /// An instance of native `service` as Eureka shows it. `override` is an overridden status
    /// set with `PUT …/status`; `wallOffset` turns the core's instants into wall-clock time.
    static func instance(_ snapshot: InstanceSnapshot, service: String, override: String?, wallOffset: Int64,
                         action: String = "ADDED") -> EurekaInstance {
        let endpoint = InstanceEndpoint.parse(snapshot.address)
        let host = endpoint?.host ?? snapshot.address
        var status = snapshot.status.rawValue
        // Eureka has no checks: an instance failing one is not UP to its clients.
        if snapshot.attributes.hasCriticalCheck && status == "UP" { status = "DOWN" }
        var fields = EurekaInstance(instanceId: snapshot.id, hostName: host, app: service.uppercased(), ipAddr: host, status: status)
        fields.overriddenStatus = override ?? "UNKNOWN"
        let secure = endpoint?.scheme == "https"
        let port = endpoint?.port ?? 0
        fields.port = secure ? 80 : port
        fields.portEnabled = !secure
        fields.securePort = secure ? port : 443
        fields.securePortEnabled = secure
        let registered = (snapshot.registeredAt.nanoseconds + wallOffset) / 1_000_000
        let renewed = (snapshot.lastHeartbeat.nanoseconds + wallOffset) / 1_000_000
        fields.renewalIntervalInSecs = 30
        fields.durationInSecs = snapshot.ttl == InstanceAttributes.noExpiry ? 0 : Int(snapshot.ttl.wholeNanoseconds / 1_000_000_000)
        fields.registrationTimestamp = registered
        fields.lastRenewalTimestamp = renewed
        fields.serviceUpTimestamp = registered
        fields.metadata = snapshot.metadata
        if let endpoint {
            let authority = endpoint.host.contains(":") ? "[\(endpoint.host)]:\(endpoint.port)" : "\(endpoint.host):\(endpoint.port)"
            fields.homePageUrl = "\(endpoint.scheme ?? "http")://\(authority)/"
        }
        for check in snapshot.checks {
            if case .http(let probe) = check.probe {
                fields.healthCheckUrl = probe.url
                break
            }
        }
        fields.vipAddress = service
        fields.secureVipAddress = service
        fields.lastUpdatedTimestamp = renewed
        fields.lastDirtyTimestamp = registered
        fields.actionType = action
        return fields
    }

    /// `STATUS_count_` for each status, sorted by name: Eureka's reconcile hash.
    static func hashcode(_ instances: [EurekaInstance]) -> String {
        var counts: [String: Int] = [:]
        for instance in instances { counts[instance.status, default: 0] += 1 }
        return counts.keys.sorted().map { "\($0)_\(counts[$0]!)_" }.joined()
    }

    func applications(_ apps: [(name: String, instances: [EurekaInstance])], versionsDelta: UInt64, hashcode: String) -> [UInt8] {
        var out = JSONWriter(capacity: 1024 + 1024 * apps.reduce(0) { $0 + $1.instances.count })
        if json {
            out.raw("{\"applications\":{\"versions__delta\":")
            out.string(String(versionsDelta))
            out.raw(",\"apps__hashcode\":")
            out.string(hashcode)
            out.raw(",\"application\":[")
            for (position, app) in apps.enumerated() {
                if position > 0 { out.raw(",") }
                writeApplication(app.name, app.instances, to: &out)
            }
            out.raw("]}}")
        } else {
            out.raw("<applications>\n  <versions__delta>")
            xml(String(versionsDelta), to: &out)
            out.raw("</versions__delta>\n  <apps__hashcode>")
            xml(hashcode, to: &out)
            out.raw("</apps__hashcode>\n")
            for app in apps { writeApplication(app.name, app.instances, to: &out) }
            out.raw("</applications>\n")
        }
        return out.bytes
    }

    func application(_ name: String, _ instances: [EurekaInstance]) -> [UInt8] {
        var out = JSONWriter(capacity: 1024 * max(1, instances.count))
        if json { out.raw("{\"application\":") }
        writeApplication(name, instances, to: &out)
        if json { out.raw("}") }
        return out.bytes
    }

    func instance(_ instance: EurekaInstance) -> [UInt8] {
        var out = JSONWriter(capacity: 1024)
        if json { out.raw("{\"instance\":") }
        writeInstance(instance, indent: "", to: &out)
        if json { out.raw("}") }
        return out.bytes
    }

    private func writeApplication(_ name: String, _ instances: [EurekaInstance], to out: inout JSONWriter) {
        if json {
            out.raw("{\"name\":")
            out.string(name)
            out.raw(",\"instance\":[")
            for (position, instance) in instances.enumerated() {
                if position > 0 { out.raw(",") }
                writeInstance(instance, indent: "", to: &out)
            }
            out.raw("]}")
        } else {
            out.raw("  <application>\n    <name>")
            xml(name, to: &out)
            out.raw("</name>\n")
            for instance in instances { writeInstance(instance, indent: "    ", to: &out) }
            out.raw("  </application>\n")
        }
    }

    private func writeInstance(_ instance: EurekaInstance, indent: String, to out: inout JSONWriter) {
        if json {
            out.raw("{\"instanceId\":")
            out.string(instance.instanceId)
            out.raw(",\"hostName\":")
            out.string(instance.hostName)
            out.raw(",\"app\":")
            out.string(instance.app)
            out.raw(",\"ipAddr\":")
            out.string(instance.ipAddr)
            out.raw(",\"status\":")
            out.string(instance.status)
            out.raw(",\"overriddenStatus\":")
            out.string(instance.overriddenStatus)
            out.raw(",\"port\":{\"$\":")
            out.integer(instance.port)
            out.raw(",\"@enabled\":\"\(instance.portEnabled)\"},\"securePort\":{\"$\":")
            out.integer(instance.securePort)
            out.raw(",\"@enabled\":\"\(instance.securePortEnabled)\"},\"countryId\":")
            out.integer(instance.countryId)
            out.raw(",\"dataCenterInfo\":{\"@class\":")
            out.string(instance.dataCenterClass)
            out.raw(",\"name\":")
            out.string(instance.dataCenterName)
            out.raw("},\"leaseInfo\":{\"renewalIntervalInSecs\":")
            out.integer(instance.renewalIntervalInSecs)
            out.raw(",\"durationInSecs\":")
            out.integer(instance.durationInSecs)
            out.raw(",\"registrationTimestamp\":")
            out.integer(instance.registrationTimestamp)
            out.raw(",\"lastRenewalTimestamp\":")
            out.integer(instance.lastRenewalTimestamp)
            out.raw(",\"evictionTimestamp\":")
            out.integer(instance.evictionTimestamp)
            out.raw(",\"serviceUpTimestamp\":")
            out.integer(instance.serviceUpTimestamp)
            out.raw("},\"metadata\":{")
            if instance.metadata.isEmpty { out.raw("\"@class\":\"java.util.Collections$EmptyMap\"") } else { out.members(instance.metadata) }
            out.raw("}")
            for (name, value) in autoFields(instance) {
                out.raw(",\"")
                out.raw(name)
                out.raw("\":")
                out.string(value)
            }
            out.raw("}")
        } else {
            let inner = indent + "  "
            out.raw(indent + "<instance>\n")
            func element(_ name: String, _ value: String) {
                out.raw(inner + "<" + name + ">")
                xml(value, to: &out)
                out.raw("</" + name + ">\n")
            }
            element("instanceId", instance.instanceId)
            element("hostName", instance.hostName)
            element("app", instance.app)
            element("ipAddr", instance.ipAddr)
            element("status", instance.status)
            element("overriddenstatus", instance.overriddenStatus)
            out.raw(inner + "<port enabled=\"\(instance.portEnabled)\">\(instance.port)</port>\n")
            out.raw(inner + "<securePort enabled=\"\(instance.securePortEnabled)\">\(instance.securePort)</securePort>\n")
            element("countryId", String(instance.countryId))
            out.raw(inner + "<dataCenterInfo class=\"")
            xml(instance.dataCenterClass, to: &out)
            out.raw("\">\n" + inner + "  <name>")
            xml(instance.dataCenterName, to: &out)
            out.raw("</name>\n" + inner + "</dataCenterInfo>\n" + inner + "<leaseInfo>\n")
            for (name, value) in [("renewalIntervalInSecs", Int64(instance.renewalIntervalInSecs)), ("durationInSecs", Int64(instance.durationInSecs)),
                                  ("registrationTimestamp", instance.registrationTimestamp), ("lastRenewalTimestamp", instance.lastRenewalTimestamp),
                                  ("evictionTimestamp", instance.evictionTimestamp), ("serviceUpTimestamp", instance.serviceUpTimestamp)] {
                out.raw(inner + "  <\(name)>\(value)</\(name)>\n")
            }
            out.raw(inner + "</leaseInfo>\n")
            if instance.metadata.isEmpty {
                out.raw(inner + "<metadata class=\"java.util.Collections$EmptyMap\"/>\n")
            } else {
                out.raw(inner + "<metadata>\n")
                // Native metadata keys are tokens (letters, digits, '.', '_', '-'): element names
                // as they are, but for one that starts with a digit, '.' or '-', which XML refuses.
                for entry in instance.metadata {
                    let name = entry.key.first.map { $0.isLetter || $0 == "_" } == true ? entry.key : "_" + entry.key
                    out.raw(inner + "  <" + name + ">")
                    xml(entry.value, to: &out)
                    out.raw("</" + name + ">\n")
                }
                out.raw(inner + "</metadata>\n")
            }
            for (name, value) in autoFields(instance) { element(name, value) }
            out.raw(indent + "</instance>\n")
        }
    }

    private func autoFields(_ instance: EurekaInstance) -> [(String, String)] {
        var fields: [(String, String)] = [("homePageUrl", instance.homePageUrl), ("statusPageUrl", instance.statusPageUrl),
                                          ("healthCheckUrl", instance.healthCheckUrl), ("vipAddress", instance.vipAddress),
                                          ("secureVipAddress", instance.secureVipAddress), ("isCoordinatingDiscoveryServer", "false"),
                                          ("lastUpdatedTimestamp", String(instance.lastUpdatedTimestamp)),
                                          ("lastDirtyTimestamp", String(instance.lastDirtyTimestamp))]
        if let action = instance.actionType { fields.append(("actionType", action)) }
        return fields
    }

    private func xml(_ text: String, to out: inout JSONWriter) {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&apos;"
            // XML 1.0 allows no other control character, no surrogate and neither U+FFFE nor
            // U+FFFF (the native rules let the last two through): one would make every Eureka
            // client refuse the whole document.
            case "\t", "\n", "\r": escaped.unicodeScalars.append(character)
            case _ where character.value < 0x20 || character.value == 0xFFFE || character.value == 0xFFFF:
                escaped += "\u{FFFD}"
            default: escaped.unicodeScalars.append(character)
            }
        }
        out.raw(escaped)
    }
}
