import CLibevent
import Etcd
import Foundation
import Testing
import TestSupport

/// The etcd client against real etcd members (Debian's etcd-server) on loopback.
@Suite(.enabled(if: EtcdCluster.isInstalled, "etcd is not installed: run scripts/install-test-tools.sh"))
struct EtcdClientTests {
    /// A libevent base of the test's own, run until `done` holds or `timeout` passes.
    final class Loop {
        let base: OpaquePointer
        init() { base = event_base_new() }
        deinit { event_base_free(base) }

        func run(timeout: TimeInterval = 10, until done: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while !done() {
                if Date() > deadline { return false }
                event_base_loop(base, Int32(EVLOOP_ONCE | EVLOOP_NONBLOCK))
                usleep(1_000)
            }
            return true
        }

        /// Runs one call to completion.
        func await<T>(timeout: TimeInterval = 10, _ start: (@escaping (T) -> Void) -> Void) -> T? {
            var outcome: T?
            start { outcome = $0 }
            _ = run(timeout: timeout) { outcome != nil }
            return outcome
        }
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func putRangeAndTransactionsWithCompares() throws {
        let cluster = try EtcdCluster(size: 1)
        let loop = Loop()
        let client = EtcdClient(endpoints: try EtcdEndpoint.list(parsing: cluster.endpoints), base: loop.base)
        let key = Self.bytes("/t/instances/api/a-1")
        let first = try #require(loop.await { client.put(key, Self.bytes("{\"v\":1}"), completion: $0) }).get()
        #expect(first.revision > 1)

        let read = try #require(loop.await { client.range(key, completion: $0) }).get()
        #expect(read.kvs.count == 1)
        #expect(read.kvs.first?.value == Self.bytes("{\"v\":1}"))
        #expect(read.kvs.first?.modRevision == first.revision)
        #expect(read.header.revision == first.revision)

        // A compare on the revision the key has: applied. On a stale one: not, and the
        // failure branch reads the key as it is.
        let applied = try #require(loop.await {
            client.txn(compare: [.modRevision(key, equals: first.revision)], success: [.put(key, Self.bytes("{\"v\":2}"))],
                       failure: [.range(key: key, rangeEnd: nil)], completion: $0)
        }).get()
        #expect(applied.succeeded)
        #expect(applied.header.revision == first.revision + 1)
        let refused = try #require(loop.await {
            client.txn(compare: [.modRevision(key, equals: first.revision)], success: [.delete(key)],
                       failure: [.range(key: key, rangeEnd: nil)], completion: $0)
        }).get()
        #expect(!refused.succeeded)
        #expect(refused.ranges.first?.first?.value == Self.bytes("{\"v\":2}"))
        // Creating only what does not exist (create revision 0).
        let created = try #require(loop.await {
            client.txn(compare: [.createRevision(Self.bytes("/t/new"), equals: 0)], success: [.put(Self.bytes("/t/new"), [])], completion: $0)
        }).get()
        #expect(created.succeeded)

        // A prefix, in pages: `more` says there is another.
        for index in 0..<5 {
            _ = try #require(loop.await { client.put(Self.bytes("/t/page/\(index)"), Self.bytes("\(index)"), completion: $0) }).get()
        }
        let prefix = Self.bytes("/t/page/")
        let page = try #require(loop.await { client.range(prefix, rangeEnd: prefixEnd(prefix), limit: 3, completion: $0) }).get()
        #expect(page.kvs.map(\.keyText) == ["/t/page/0", "/t/page/1", "/t/page/2"])
        #expect(page.more)
        #expect(page.count == 5)
        let rest = try #require(loop.await {
            client.range(page.kvs.last!.key + [0], rangeEnd: prefixEnd(prefix), revision: page.header.revision, completion: $0)
        }).get()
        #expect(rest.kvs.map(\.keyText) == ["/t/page/3", "/t/page/4"])
        #expect(!rest.more)

        // Bytes that are not text survive base64 both ways.
        let binary: [UInt8] = [0, 1, 0xFE, 0xFF, 0x7F]
        _ = try #require(loop.await { client.put(Self.bytes("/t/binary"), binary, completion: $0) }).get()
        #expect(try #require(loop.await { client.range(Self.bytes("/t/binary"), completion: $0) }).get().kvs.first?.value == binary)
    }

    @Test func leasesHoldKeysUntilRevoked() throws {
        let cluster = try EtcdCluster(size: 1)
        let loop = Loop()
        let client = EtcdClient(endpoints: try EtcdEndpoint.list(parsing: cluster.endpoints), base: loop.base)
        let lease = try #require(loop.await { client.grantLease(ttl: 5, completion: $0) }).get()
        #expect(lease.ttl == 5)
        let key = Self.bytes("/t/leader")
        _ = try #require(loop.await { client.put(key, Self.bytes("me"), lease: lease.id, completion: $0) }).get()
        #expect(try #require(loop.await { client.range(key, completion: $0) }).get().kvs.first?.lease == lease.id)
        let left = try #require(loop.await { client.keepAlive(lease: lease.id, completion: $0) }).get()
        #expect(left == 5)
        try #require(loop.await { client.revoke(lease: lease.id, completion: $0) }).get()
        #expect(try #require(loop.await { client.range(key, completion: $0) }).get().kvs.isEmpty)
        // A lease that is gone answers TTL 0 to a keep-alive, and revoking it again is fine.
        #expect(try #require(loop.await { client.keepAlive(lease: lease.id, completion: $0) }).get() == 0)
        try #require(loop.await { client.revoke(lease: lease.id, completion: $0) }).get()
    }

    @Test func watchDeliversChangesFromARevisionAndSaysWhenCompacted() throws {
        let cluster = try EtcdCluster(size: 1)
        let loop = Loop()
        let client = EtcdClient(endpoints: try EtcdEndpoint.list(parsing: cluster.endpoints), base: loop.base)
        let prefix = Self.bytes("/w/")
        let start = try #require(loop.await { client.put(Self.bytes("/w/a"), Self.bytes("1"), completion: $0) }).get().revision
        _ = try #require(loop.await { client.put(Self.bytes("/other"), Self.bytes("x"), completion: $0) }).get()

        var events: [(WatchEvent.Kind, String, Int64)] = []
        var ended: EtcdError?
        var created = false
        let watch = EtcdWatch(client: client, key: prefix, rangeEnd: prefixEnd(prefix), startRevision: start, onResponse: { response in
            if response.created { created = true }
            for event in response.events { events.append((event.kind, event.kv.keyText, event.kv.modRevision)) }
        }, onEnd: { ended = $0 })
        #expect(loop.run { events.count == 1 })
        #expect(created)
        #expect(events.first?.1 == "/w/a")
        _ = try #require(loop.await { client.put(Self.bytes("/w/b"), Self.bytes("2"), completion: $0) }).get()
        _ = try #require(loop.await { client.delete(Self.bytes("/w/a"), completion: $0) }).get()
        #expect(loop.run { events.count == 3 })
        #expect(events.map(\.1) == ["/w/a", "/w/b", "/w/a"])
        #expect(events.map(\.0) == [.put, .put, .delete])
        #expect(events.map(\.2) == events.map(\.2).sorted())
        // Progress notifications (every second with this cluster's setting) keep coming.
        var progress = 0
        let heard = EtcdWatch(client: client, key: prefix, rangeEnd: prefixEnd(prefix), startRevision: 0, onResponse: { response in
            if !response.created && response.events.isEmpty { progress += 1 }
        }, onEnd: { _ in })
        #expect(loop.run(timeout: 5) { progress >= 1 })
        heard.cancel()
        watch.cancel()
        #expect(ended == nil)

        // Compacted past the start: the watch ends and says from where to read again.
        let now = try #require(loop.await { client.put(Self.bytes("/w/c"), Self.bytes("3"), completion: $0) }).get().revision
        _ = try #require(loop.await { completion in
            client.post("/v3/kv/compaction", Self.bytes("{\"revision\":\"\(now)\"}"), completion: completion)
        }).get()
        var endedWith: EtcdError?
        let stale = EtcdWatch(client: client, key: prefix, rangeEnd: prefixEnd(prefix), startRevision: start,
                              onResponse: { _ in }, onEnd: { endedWith = $0 })
        #expect(loop.run { endedWith != nil })
        #expect(endedWith?.kind == .compacted(revision: now))
        #expect(stale.isEnded)
    }

    @Test func requestsMoveToAnotherMemberAndFailWithoutQuorum() throws {
        let cluster = try EtcdCluster(size: 3)
        let loop = Loop()
        let client = EtcdClient(endpoints: try EtcdEndpoint.list(parsing: cluster.endpoints), base: loop.base,
                                requestTimeout: .seconds(2))
        var moves: [String] = []
        client.onFailover = { from, to, _ in moves.append("\(from)->\(to)") }
        _ = try #require(loop.await { client.put(Self.bytes("/f/1"), Self.bytes("a"), completion: $0) }).get()
        #expect(client.preferred == 0)

        cluster.kill(0)
        // The first member is gone: the same call succeeds on the next one.
        let header = try #require(loop.await { client.put(Self.bytes("/f/2"), Self.bytes("b"), completion: $0) }).get()
        #expect(header.revision > 0)
        // (If the killed member led etcd, the next one may first answer "no leader" while the
        // other two elect one, and the request moves on once more.)
        #expect(client.preferred != 0)
        #expect(moves.first == "\(cluster.members[0].clientURL)->\(cluster.members[1].clientURL)")
        let stillUp = client.preferred

        // Two of three gone: no quorum, a write fails (timed out or unavailable), in bounded time.
        cluster.kill(stillUp == 1 ? 2 : 1)
        let started = Date()
        let outcome = try #require(loop.await(timeout: 30) { client.put(Self.bytes("/f/3"), Self.bytes("c"), completion: $0) })
        guard case .failure(let error) = outcome else {
            Issue.record("a write without quorum succeeded")
            return
        }
        #expect(error.worthAnotherMember, "\(error)")
        #expect(Date().timeIntervalSince(started) < 20)

        // Back to quorum: writes go through again, and what was written before is there.
        try cluster.start(0)
        try cluster.start(stillUp == 1 ? 2 : 1)
        try cluster.waitUntilHealthy([0, 1, 2])
        var written: Result<ResponseHeader, EtcdError>?
        for _ in 0..<10 {
            written = loop.await { client.put(Self.bytes("/f/4"), Self.bytes("d"), completion: $0) }
            if case .success = written { break }
            usleep(300_000)
        }
        #expect(try written?.get().revision ?? 0 > header.revision)
        let all = try #require(loop.await { client.range(Self.bytes("/f/"), rangeEnd: prefixEnd(Self.bytes("/f/")), completion: $0) }).get()
        #expect(all.kvs.map(\.keyText).contains("/f/2"))
        #expect(!all.kvs.map(\.keyText).contains("/f/3") || all.kvs.count == 4)
    }

    @Test func whatIsNotEtcdIsNamed() throws {
        let loop = Loop()
        let port = try EtcdCluster.freePort()
        let client = EtcdClient(endpoints: [EtcdEndpoint(host: "127.0.0.1", port: port)], base: loop.base, requestTimeout: .seconds(2))
        let outcome = try #require(loop.await { client.put(Self.bytes("/x"), [], completion: $0) })
        guard case .failure(let error) = outcome else {
            Issue.record("a put to a closed port succeeded")
            return
        }
        #expect(error.kind == .unreachable)
        #expect(error.message.contains("could not be reached"), "\(error)")
    }

    @Test func endpointsParse() throws {
        #expect(try EtcdEndpoint.list(parsing: "http://127.0.0.1:2379, http://10.0.0.2:2380,10.0.0.3") == [
            EtcdEndpoint(host: "127.0.0.1", port: 2379), EtcdEndpoint(host: "10.0.0.2", port: 2380), EtcdEndpoint(host: "10.0.0.3", port: 2379),
        ])
        #expect(try EtcdEndpoint(parsing: "http://[::1]:2379") == EtcdEndpoint(host: "::1", port: 2379))
        #expect(try EtcdEndpoint(parsing: "https://etcd") == EtcdEndpoint(host: "etcd", port: 2379, secure: true))
        #expect(try EtcdEndpoint(parsing: "https://etcd:2379").description == "https://etcd:2379")
        #expect(throws: EtcdEndpoint.Invalid.self) { try EtcdEndpoint(parsing: "ftp://etcd:2379") }
        #expect(throws: EtcdEndpoint.Invalid.self) { try EtcdEndpoint(parsing: "http://etcd:2379/v3") }
        #expect(throws: EtcdEndpoint.Invalid.self) { try EtcdEndpoint(parsing: "http://etcd:0") }
        #expect(throws: EtcdEndpoint.Invalid.self) { try EtcdEndpoint.list(parsing: "") }
        #expect(prefixEnd(Array("/a/".utf8)) == Array("/a0".utf8))
        #expect(prefixEnd([0x61, 0xFF]) == [0x62])
    }
}
