#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A helper thread that handles messages in order, off the event loop, and hands back
/// outcomes. It exchanges messages with the loop and nothing else: what a job needs (a file
/// descriptor, a frozen copy of the registry) travels inside the message.
///
/// The loop calls `send(_:)`; the thread wakes, takes every message waiting (so a handler
/// can merge them: many fsync requests become one fsync), and posts the outcomes. Then
/// `readyDescriptor` turns readable, and the loop, which watches it, calls `takeOutcomes()`.
public final class Worker<Message: Sendable, Outcome: Sendable>: Sendable {
    private let shared: Shared
    private let thread: pthread_t

    /// Readable while outcomes wait for `takeOutcomes()`.
    public var readyDescriptor: Int32 { shared.readyPipe.read }

    /// Starts the thread. `handle` runs on it, with the messages that arrived since its last
    /// run, oldest first.
    public init(handle: @escaping @Sendable ([Message]) -> [Outcome]) {
        let shared = Shared(handle: handle)
        self.shared = shared
        thread = startThread { shared.run() }
    }

    public func send(_ message: Message) {
        shared.inbox.withLock { $0.messages.append(message) }
        shared.wakeThread()
    }

    /// The outcomes posted since the last call, oldest first.
    public func takeOutcomes() -> [Outcome] {
        var drain = [UInt8](repeating: 0, count: 64)
        while Glibc.read(shared.readyPipe.read, &drain, drain.count) > 0 {}
        return shared.outbox.withLock { outcomes in
            defer { outcomes.removeAll() }
            return outcomes
        }
    }

    /// Lets the thread finish the messages already sent, then waits for it to end.
    public func stop() {
        shared.inbox.withLock { $0.stopping = true }
        shared.wakeThread()
        pthread_join(thread, nil)
    }

    private final class Shared: Sendable {
        let inbox = Mutex<(messages: [Message], stopping: Bool)>(([], false))
        let outbox = Mutex<[Outcome]>([])
        let handle: @Sendable ([Message]) -> [Outcome]
        /// The thread sleeps reading `wakePipe`; the loop watches `readyPipe`.
        let wakePipe: (read: Int32, write: Int32)
        let readyPipe: (read: Int32, write: Int32)

        init(handle: @escaping @Sendable ([Message]) -> [Outcome]) {
            self.handle = handle
            wakePipe = Self.makePipe(nonBlockingRead: false)
            readyPipe = Self.makePipe(nonBlockingRead: true)
        }

        deinit {
            for descriptor in [wakePipe.read, wakePipe.write, readyPipe.read, readyPipe.write] { close(descriptor) }
        }

        func wakeThread() {
            var byte: UInt8 = 1
            // A full pipe already holds a wake-up; the thread takes every message when it runs.
            _ = Glibc.write(wakePipe.write, &byte, 1)
        }

        func run() {
            var drain = [UInt8](repeating: 0, count: 64)
            while true {
                let count = Glibc.read(wakePipe.read, &drain, drain.count)
                if count < 0 && errno == EINTR { continue }
                let (messages, stopping) = inbox.withLock { inbox in
                    defer { inbox.messages.removeAll() }
                    return (inbox.messages, inbox.stopping)
                }
                if !messages.isEmpty {
                    let outcomes = handle(messages)
                    if !outcomes.isEmpty {
                        outbox.withLock { $0.append(contentsOf: outcomes) }
                        var byte: UInt8 = 1
                        _ = Glibc.write(readyPipe.write, &byte, 1)
                    }
                }
                if stopping { return }
            }
        }

        /// A pipe whose write end never blocks (a full pipe already says "wake up").
        private static func makePipe(nonBlockingRead: Bool) -> (read: Int32, write: Int32) {
            var descriptors: [Int32] = [0, 0]
            precondition(pipe(&descriptors) == 0, "cannot create a pipe: \(String(cString: strerror(errno)))")
            for descriptor in descriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
            _ = fcntl(descriptors[1], F_SETFL, O_NONBLOCK)
            if nonBlockingRead { _ = fcntl(descriptors[0], F_SETFL, O_NONBLOCK) }
            return (descriptors[0], descriptors[1])
        }
    }
}

/// The body travels to the new thread in a retained box; the thread releases it.
private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

private func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let started = pthread_create(&thread, nil, { context in
        Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue().run()
        return nil
    }, context)
    precondition(started == 0, "cannot start a worker thread: \(String(cString: strerror(started)))")
    return thread
}
