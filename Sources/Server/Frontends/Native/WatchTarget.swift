import Access
import HTTPParsing
import Registry

/// What a parked request or a stream watches.
enum WatchTarget {
    case service(String, ReadQuery)
    /// Every service, or (with a grant) only those the caller may read.
    case services(Grant?)
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

    /// What streams of this target may share: their events are the same bytes. Nil when each
    /// read differs (a pick rotates or shuffles per read).
    var sharingKey: String? {
        switch self {
        case .services(nil): return "*"
        case .services(let grant?): return "*|" + grant.summary
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
