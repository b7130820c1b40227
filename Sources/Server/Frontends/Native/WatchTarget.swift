import Access
import HTTPParsing

/// What a parked request or a stream watches.
enum WatchTarget {
    case service(String, ReadQuery)
    /// Every service, or (with a grant) only those the caller may read.
    case services(Grant?)

    /// The service whose changes wake this watcher; nil for all of them.
    var serviceName: String? {
        if case .service(let name, _) = self { return name }
        return nil
    }

    /// What streams of this target may share: their events are the same bytes. Nil when each
    /// read differs (a pick rotates or shuffles per read).
    var sharingKey: String? {
        switch self {
        case .services(nil): return "*"
        case .services(let grant?): return "*|" + grant.summary
        case .service(let name, let query): return query.pick == nil ? name + "|" + query.filterKey : nil
        }
    }
}
