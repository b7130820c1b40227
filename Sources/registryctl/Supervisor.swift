#if canImport(Glibc)
import Glibc
#endif
import RegistryClient
import RegistryWire

/// `registryctl run`: registers an instance, runs a command, heartbeats while it runs, and
/// deregisters when it ends or a stop signal arrives; exits with the command's status.
///
/// One thread, no event loop: the stop signals and SIGCHLD are blocked and taken with
/// `sigtimedwait`, whose time-out is the next heartbeat. The command gets the signals
/// unblocked and at their defaults.
struct Supervisor {
    let context: Context
    let spec: RegistrationRequest
    let interval: Duration
    let command: [String]

    /// Exit statuses of `run` itself, as shells use them.
    static let cannotStart: Int32 = 125
    static let notExecutable: Int32 = 126
    static let notFound: Int32 = 127

    private static let stopSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT]

    func run() -> Int32 {
        var watched = sigset_t()
        sigemptyset(&watched)
        for signal in Self.stopSignals + [SIGCHLD] { sigaddset(&watched, signal) }
        sigprocmask(SIG_BLOCK, &watched, nil)

        // The command first: one that cannot start is never registered, not even for a moment.
        let child: pid_t
        switch spawn() {
        case .success(let pid):
            child = pid
        case .failure(let failure):
            note("cannot start \(command[0]): \(String(cString: strerror(failure.code))); nothing was registered")
            return failure.code == ENOENT ? Self.notFound : Self.notExecutable
        }
        var registered = register()
        note("started \(command.joined(separator: " ")) (pid \(child)); heartbeating every \(seconds(interval))")

        var nextBeat = now() + (registered ? interval : .seconds(1))
        var backoff: Duration = .seconds(1)
        var stopping = false
        while true {
            var info = siginfo_t()
            let wait = max(Duration.zero, nextBeat - now())
            var timeout = timespec(tv_sec: Int(wait.components.seconds), tv_nsec: Int(wait.components.attoseconds / 1_000_000_000))
            let signal = sigtimedwait(&watched, &info, &timeout)
            if signal == SIGCHLD {
                var status: Int32 = 0
                if waitpid(child, &status, WNOHANG) == child {
                    let code = exitCode(status)
                    if !stopping { deregister() }
                    note("\(command[0]) exited with status \(code)")
                    return code
                }
                continue
            }
            if Self.stopSignals.contains(signal) {
                if !stopping {
                    stopping = true
                    // Out of discovery first, so that no new traffic comes, then the signal.
                    deregister()
                }
                note("passing \(signalName(signal)) to \(command[0]) (pid \(child))")
                kill(child, signal)
                continue
            }
            guard !stopping, now() >= nextBeat else { continue }
            switch beat(registered: &registered) {
            case true:
                backoff = .seconds(1)
                nextBeat = now() + interval
            case false:
                nextBeat = now() + backoff
                backoff = min(backoff * 2, interval)
            }
        }
    }

    /// One heartbeat, or a registration when the registry does not know the instance
    /// (it expired, or the registry lost it); false when the registry could not be reached.
    private func beat(registered: inout Bool) -> Bool {
        guard registered else {
            registered = register()
            return registered
        }
        switch context.call(.post, "/heartbeat", body: spec.reference.encode()) {
        case .success(let reply) where reply.status == 200:
            return true
        case .success(let reply) where reply.status == 404:
            note("the registry does not know \(spec.service) at \(spec.address) (\(reply.message ?? "404")); registering again")
            registered = register()
            return registered
        case .success(let reply):
            note("heartbeat refused (\(reply.status)): \(reply.message ?? reply.text)")
            return false
        case .failure(let failure):
            note("\(failure.message); retrying")
            return false
        }
    }

    private func register() -> Bool {
        switch context.call(.post, "/register", body: spec.encode()) {
        case .success(let reply) where (200..<300).contains(reply.status):
            note(reply.message ?? "registered \(spec.service) at \(spec.address)")
            return true
        case .success(let reply):
            note("registration refused (\(reply.status)): \(reply.message ?? reply.text)")
            return false
        case .failure(let failure):
            note("\(failure.message); the command runs anyway and registration is retried")
            return false
        }
    }

    private func deregister() {
        switch context.call(.post, "/deregister", body: spec.reference.encode()) {
        case .success(let reply) where reply.status == 200 || reply.status == 404:
            note(reply.status == 200 ? (reply.message ?? "deregistered") : "already gone from the registry")
        case .success(let reply):
            note("deregistration refused (\(reply.status)): \(reply.message ?? reply.text)")
        case .failure(let failure):
            note("\(failure.message); the instance will expire by itself")
        }
    }

    private struct SpawnFailure: Error {
        let code: Int32
    }

    private func spawn() -> Result<pid_t, SpawnFailure> {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in Self.stopSignals + [SIGCHLD, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var arguments = command.map { strdup($0) }
        arguments.append(nil)
        defer { for argument in arguments { free(argument) } }
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, command[0], nil, &attributes, arguments, environ)
        return result == 0 ? .success(pid) : .failure(SpawnFailure(code: result))
    }

    private func exitCode(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    private func note(_ message: String) {
        printError("registryctl run: \(message)")
    }

    private func now() -> Duration {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return .seconds(spec.tv_sec) + .nanoseconds(spec.tv_nsec)
    }

    private func seconds(_ duration: Duration) -> String {
        let value = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return value.rounded() == value ? "\(Int(value))s" : "\(value)s"
    }

    private func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        case SIGHUP: return "SIGHUP"
        case SIGQUIT: return "SIGQUIT"
        default: return "signal \(signal)"
        }
    }
}

func runCommand(_ context: Context, _ words: ArraySlice<String>) throws(Arguments.Problem) -> Int32 {
    let arguments = try Arguments(words, valued: registrationOptions.union(["service", "address", "interval"]))
    let usage = "registryctl run --service S --address A [--interval 10s] [registration options] -- COMMAND [ARGS…]"
    guard let service = arguments.value("service"), let address = arguments.value("address") else {
        throw Arguments.Problem(message: "run needs --service and --address; usage: \(usage)")
    }
    guard arguments.positionals.isEmpty else {
        throw Arguments.Problem(message: "unexpected '\(arguments.positionals[0])': put the command after --; usage: \(usage)")
    }
    guard !arguments.trailing.isEmpty else { throw Arguments.Problem(message: "no command to run; usage: \(usage)") }
    let interval = try arguments.value("interval").map { text throws(Arguments.Problem) in
        guard let parsed = parseInterval(text) else { throw Arguments.Problem(message: "--interval takes 10s, 500ms or seconds, got '\(text)'") }
        return parsed
    } ?? .seconds(10)
    let spec = try registration(service: service, address: address, from: arguments)
    return Supervisor(context: context, spec: spec, interval: interval, command: arguments.trailing).run()
}
