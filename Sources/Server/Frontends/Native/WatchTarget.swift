import Access
import HTTPParsing
import Registry

/// What a parked request or a stream watches.
enum WatchTarget {
    case service(String, ReadQuery)
    /// The services listing: every service, or those a query keeps, or (with a grant) only
    /// those the caller may read.
    case services(ServicesListingQuery)
    /// A read another front end renders (Consul's blocking queries): long-polls only.
    case external(ExternalRead)

    /// The service whose changes wake this watcher; nil for all of them.
    var serviceName: String? {
        switch self {
        case .service(let name, _): return name
        case .services: return nil
        case .external(let read): return read.serviceName
        }
    }

    /// The index a stream's client already has (`index=N`): the stream's first event is left
    /// out while the index is still N, as a blocking query waits.
    var resumeIndex: UInt64? {
        switch self {
        case .service(_, let query): return query.index
        case .services(let listing): return listing.query.index
        case .external: return nil
        }
    }

    /// What streams of this target may share: their events are the same bytes. Nil when each
    /// read differs (a pick rotates or shuffles per read).
    var sharingKey: String? {
        switch self {
        case .services(let listing): return listing.sharingKey
        case .service(let name, let query): return query.pick == nil ? name + "|" + query.filterKey : nil
        case .external: return nil
        }
    }
}

/// A held read rendered by another front end: the service whose changes wake it (nil: any
/// change), the index it would carry now, and its answer.
struct ExternalRead {
    let serviceName: String?
    let index: (Instant) -> UInt64
    let answer: (Instant, Int64) -> Response
}

/// What a `/services` read or `/watch` stream lists: its query, and the grant of a caller
/// that may not read every service (nil for one that may).
struct ServicesListingQuery {
    let readable: Grant?
    let query: ServicesQuery

    /// Streams with the same key get the same events.
    var sharingKey: String {
        var key = "*"
        if let readable { key += "|" + readable.summary }
        if !query.isWholeListing { key += "|" + query.listingKey }
        return key
    }
}
