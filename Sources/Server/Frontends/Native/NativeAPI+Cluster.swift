import JSON
import Registry

/// `GET /cluster` (the replicas, the leader, etcd's members, this replica's role) and
/// `POST /cluster/heartbeats` (a follower's report of the heartbeats it took, for the
/// leader; see `HeartbeatRelay`).
extension NativeAPI {
    func clusterState(_ request: RouteRequest) -> Handling {
        guard let cluster else {
            return .respond(Response(status: 200, body: Array("{\"mode\":\"single\",\"note\":\"this registry runs alone; start it with --etcd for cluster mode\"}".utf8)))
        }
        let leadership = cluster.leadership
        let store = cluster.store
        var json = JSONWriter(capacity: 1024)
        json.raw("{\"mode\":\"cluster\",\"replica\":{\"name\":")
        json.string(leadership.me.name)
        json.raw(",\"url\":")
        json.string(leadership.me.url)
        json.raw(",\"role\":\"")
        json.raw(leadership.role.rawValue)
        json.raw("\",\"ready\":")
        json.raw(store.isLoaded ? "true" : "false")
        json.raw(",\"applied_revision\":")
        json.integer(store.appliedRevision)
        json.raw(",\"change_index\":")
        json.integer(service.changeIndex)
        json.raw(",\"last_contact_ms\":")
        if let contact = store.lastContactMilliseconds(now: request.now) { json.integer(contact) } else { json.raw("null") }
        json.raw(",\"known_leader\":")
        json.raw(leadership.knowsLeader ? "true" : "false")
        json.raw(",\"queued_writes\":")
        json.integer(store.queuedWrites)
        json.raw(",\"heartbeats_to_report\":")
        json.integer(cluster.relay.pending)
        json.raw("},\"leader\":")
        if let leader = leadership.leader {
            json.raw("{\"name\":")
            json.string(leader.name)
            json.raw(",\"url\":")
            json.string(leader.url)
            json.raw("}")
        } else {
            json.raw("null")
        }
        json.raw(",\"replicas\":[")
        for (index, name) in leadership.replicas.keys.sorted().enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{\"name\":")
            json.string(name)
            let presence = leadership.replicas[name]
            json.raw(",\"url\":")
            json.string(presence?.url ?? "")
            json.raw(",\"leader\":")
            json.raw(leadership.leader?.name == name ? "true" : "false")
            // As the replica last wrote it (at start, then every 5 s when it moved); the lag
            // is this replica's change index less that one, in index units (etcd revisions).
            json.raw(",\"change_index\":")
            json.integer(presence?.changeIndex ?? 0)
            json.raw(",\"lag_behind_this_replica\":")
            json.integer(Int64(service.changeIndex) - Int64(presence?.changeIndex ?? 0))
            json.raw("}")
        }
        json.raw("],\"etcd\":{\"prefix\":")
        json.string(cluster.prefix)
        json.raw(",\"preferred\":")
        json.string(cluster.client.preferredEndpoint.description)
        json.raw(",\"members\":[")
        for (index, member) in cluster.members.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{\"url\":")
            json.string(member.endpoint.description)
            json.raw(",\"healthy\":")
            json.raw(member.status != nil && member.error == nil ? "true" : "false")
            if let status = member.status {
                json.raw(",\"version\":")
                json.string(status.version)
                json.raw(",\"is_leader\":")
                json.raw(status.leader == status.header.memberID && !status.leader.isEmpty ? "true" : "false")
                json.raw(",\"raft_index\":")
                json.integer(status.raftIndex)
                json.raw(",\"db_size_bytes\":")
                json.integer(status.dbSize)
            }
            if let error = member.error {
                json.raw(",\"error\":")
                json.string(error)
            }
            json.raw(",\"checked_ms_ago\":")
            if let checked = member.checkedAt { json.integer(request.now.duration(since: checked).wholeNanoseconds / 1_000_000) } else { json.raw("null") }
            json.raw("}")
        }
        let stats = store.stats
        json.raw("]},\"writes\":{\"transactions\":")
        json.integer(stats.transactions)
        json.raw(",\"proposals\":")
        json.integer(stats.operations)
        json.raw(",\"conflicts\":")
        json.integer(stats.conflicts)
        json.raw(",\"failures\":")
        json.integer(stats.failures)
        json.raw("}}")
        return .respond(Response(status: 200, body: json.bytes, index: service.changeIndex))
    }

    /// The leader takes a follower's heartbeats: `{"heartbeats":[{"service","id","age_ms"}]}`.
    func clusterHeartbeats(_ request: RouteRequest) -> Handling {
        guard let cluster else { return .respond(.error(404, "this registry is not in cluster mode (no --etcd); send heartbeats to POST /heartbeat")) }
        guard cluster.isLeader else {
            let leader = cluster.leadership.leader.map { "the leader is \($0.name) at \($0.url)" } ?? "no leader is known now"
            return .respond(.error(409, "this replica does not lead (\(leader)); reports go to the leader"))
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(request.body)
        } catch {
            return .respond(.error(400, "the body is not JSON: \(error.message)"))
        }
        guard case .array(let items)? = json[member: "heartbeats"] else {
            return .respond(.error(400, "the body must be {\"heartbeats\":[{\"service\":…,\"id\":…,\"age_ms\":…},…]}"))
        }
        var renewed = 0
        var unknown = 0
        service.read { registry in
            for item in items {
                guard case .string(let name)? = item[member: "service"], case .string(let id)? = item[member: "id"],
                      case .number(let age)? = item[member: "age_ms"], age >= 0, age < 86_400_000 else { continue }
                let at = Instant(nanoseconds: request.now.nanoseconds - Int64(age * 1_000_000))
                if registry.renewReported(service: name, id: id, heartbeatAt: at) { renewed += 1 } else { unknown += 1 }
            }
        }
        var body = JSONWriter()
        body.raw("{\"status\":\"ok\",\"renewed\":")
        body.integer(renewed)
        body.raw(",\"unknown\":")
        body.integer(unknown)
        body.raw("}")
        return .respond(Response(status: 200, body: body.bytes))
    }
}
