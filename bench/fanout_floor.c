/*
 * fanout_floor: the least one core can do to deliver one answer to each of N
 * watchers, the baseline for watch-fanout.
 *
 * The registry's fan-out answers N held requests on N loopback TCP connections.
 * Most of its cost is the kernel's: every write goes down the TCP stack and, on
 * loopback, up the receiving socket's stack too, on the sending core.  This
 * program measures that part alone: N connections held by a reader process,
 * then one plain write() of the same answer bytes to each in a tight loop, with
 * no event loop, no HTTP and no bookkeeping.  A registry can only come close to
 * this figure, never beat it.
 *
 * Latency is measured as watchers.py measures the registry's: from just before
 * the first write to the kernel receive time (SO_TIMESTAMPNS) of each socket's
 * answer, both on CLOCK_REALTIME.
 *
 * usage: fanout_floor -n CONNECTIONS -f ANSWER_FILE [-r ROUNDS]
 *                     [--writer-cpu C] [--reader-cpu C]
 * Prints one JSON line per round on stdout:
 *   {"round": R, "watchers": N, "bytes": B, "p50_ms": …, "p99_ms": …, "max_ms": …}
 * and exits 0, or prints what went wrong on stderr and exits 1.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>

enum { MAX_ANSWER_BYTES = 1 << 20, READ_BYTES = 1 << 16, DELIVERY_TIMEOUT_MS = 30000 };

static void
fail(const char *what)
{
	fprintf(stderr, "fanout_floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
pin(int cpu)
{
	cpu_set_t set;
	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		fail("sched_setaffinity");
}

static long long
realtime_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int
compare_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

static void
read_exactly(int fd, void *buffer, size_t length)
{
	char *at = buffer;
	while (length > 0) {
		ssize_t n = read(fd, at, length);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "fanout_floor: the other process went away\n");
			exit(1);
		}
		at += n;
		length -= (size_t)n;
	}
}

static void
write_exactly(int fd, const void *buffer, size_t length)
{
	if (write(fd, buffer, length) != (ssize_t)length)
		fail("write to the control pipe");
}

/*
 * The reader: holds n connections in one epoll set.  Each round it waits for
 * the writer's start time, then reads `answer_bytes` from every connection and
 * reports each one's first kernel receive time, relative to that start.
 */
static void
reader(const struct sockaddr_in *address, int n, size_t answer_bytes, int rounds, int control_in, int control_out)
{
	int *sockets = calloc((size_t)n, sizeof *sockets);
	size_t *received = calloc((size_t)n, sizeof *received);
	long long *first = calloc((size_t)n, sizeof *first);
	long long *latencies = calloc((size_t)n, sizeof *latencies);
	char *data = malloc(READ_BYTES);
	int epoll = epoll_create1(0);
	int on = 1;

	if (!sockets || !received || !first || !latencies || !data)
		fail("calloc");
	if (epoll < 0)
		fail("epoll_create1");
	for (int i = 0; i < n; i++) {
		struct epoll_event event = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		sockets[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (sockets[i] < 0)
			fail("socket");
		if (setsockopt(sockets[i], SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0)
			fail("setsockopt SO_TIMESTAMPNS");
		if (connect(sockets[i], (const struct sockaddr *)address, sizeof *address) != 0)
			fail("connect");
		if (epoll_ctl(epoll, EPOLL_CTL_ADD, sockets[i], &event) != 0)
			fail("epoll_ctl");
	}
	write_exactly(control_out, "c", 1);

	for (int round = 0; round < rounds; round++) {
		long long started;
		int done = 0;
		read_exactly(control_in, &started, sizeof started);
		memset(received, 0, (size_t)n * sizeof *received);
		while (done < n) {
			struct epoll_event events[512];
			int ready = epoll_wait(epoll, events, 512, DELIVERY_TIMEOUT_MS);
			if (ready < 0 && errno == EINTR)
				continue;
			if (ready <= 0) {
				fprintf(stderr, "fanout_floor: %d of %d answers arrived\n", done, n);
				exit(1);
			}
			for (int e = 0; e < ready; e++) {
				int i = (int)events[e].data.u32;
				char control[CMSG_SPACE(sizeof(struct timespec))];
				struct iovec vector = { .iov_base = data, .iov_len = READ_BYTES };
				struct msghdr message = { .msg_iov = &vector, .msg_iovlen = 1,
				    .msg_control = control, .msg_controllen = sizeof control };
				ssize_t got = recvmsg(sockets[i], &message, MSG_DONTWAIT);
				if (got < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				if (got <= 0) {
					fprintf(stderr, "fanout_floor: connection %d closed\n", i);
					exit(1);
				}
				if (received[i] == 0) {
					struct cmsghdr *header = CMSG_FIRSTHDR(&message);
					struct timespec stamp;
					if (header == NULL || header->cmsg_type != SO_TIMESTAMPNS) {
						fprintf(stderr, "fanout_floor: no kernel receive time\n");
						exit(1);
					}
					memcpy(&stamp, CMSG_DATA(header), sizeof stamp);
					first[i] = stamp.tv_sec * 1000000000LL + stamp.tv_nsec;
				}
				received[i] += (size_t)got;
				if (received[i] == answer_bytes) {
					latencies[done++] = first[i] - started;
				}
			}
		}
		qsort(latencies, (size_t)n, sizeof *latencies, compare_ll);
		printf("{\"round\": %d, \"watchers\": %d, \"bytes\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
		    "\"max_ms\": %.3f}\n", round + 1, n, answer_bytes,
		    latencies[n / 2] / 1e6, latencies[(size_t)((n - 1) * 0.99)] / 1e6, latencies[n - 1] / 1e6);
		fflush(stdout);
		write_exactly(control_out, "r", 1);
	}
	exit(0);
}

int
main(int argc, char **argv)
{
	int n = 0, rounds = 3, writer_cpu = -1, reader_cpu = -1, on = 1, status;
	const char *answer_file = NULL;
	char *answer = malloc(MAX_ANSWER_BYTES), signal;
	size_t answer_bytes;
	int to_reader[2], from_reader[2], listener, *sockets;
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t length = sizeof address;
	FILE *file;
	pid_t child;

	for (int i = 1; i < argc; i++) {
		const char *value = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "-n") == 0 && value) n = atoi(value);
		else if (strcmp(argv[i], "-f") == 0 && value) answer_file = value;
		else if (strcmp(argv[i], "-r") == 0 && value) rounds = atoi(value);
		else if (strcmp(argv[i], "--writer-cpu") == 0 && value) writer_cpu = atoi(value);
		else if (strcmp(argv[i], "--reader-cpu") == 0 && value) reader_cpu = atoi(value);
		else {
			fprintf(stderr, "usage: fanout_floor -n CONNECTIONS -f ANSWER_FILE [-r ROUNDS] "
			    "[--writer-cpu C] [--reader-cpu C]\n");
			return 2;
		}
		i++;
	}
	if (n <= 0 || rounds <= 0 || answer_file == NULL || answer == NULL) {
		fprintf(stderr, "fanout_floor: -n and -f are required, -n and -r must be positive\n");
		return 2;
	}
	if ((file = fopen(answer_file, "rb")) == NULL)
		fail(answer_file);
	answer_bytes = fread(answer, 1, MAX_ANSWER_BYTES, file);
	fclose(file);
	if (answer_bytes == 0 || answer_bytes == MAX_ANSWER_BYTES) {
		fprintf(stderr, "fanout_floor: %s must hold 1 byte to 1 MiB\n", answer_file);
		return 1;
	}

	if ((listener = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		fail("socket");
	/* As the registry's listener: accepted sockets inherit TCP_NODELAY. */
	setsockopt(listener, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
	if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1024) != 0 ||
	    getsockname(listener, (struct sockaddr *)&address, &length) != 0)
		fail("listening on 127.0.0.1");
	if (pipe(to_reader) != 0 || pipe(from_reader) != 0)
		fail("pipe");
	fflush(stdout);
	if ((child = fork()) < 0)
		fail("fork");
	if (child == 0) {
		pin(reader_cpu);
		close(listener);
		reader(&address, n, answer_bytes, rounds, to_reader[0], from_reader[1]);
	}
	pin(writer_cpu);
	if ((sockets = calloc((size_t)n, sizeof *sockets)) == NULL)
		fail("calloc");
	for (int i = 0; i < n; i++) {
		if ((sockets[i] = accept(listener, NULL, NULL)) < 0)
			fail("accept");
	}
	read_exactly(from_reader[0], &signal, 1);

	for (int round = 0; round < rounds; round++) {
		long long started;
		/* Let the reader settle into epoll_wait, as the registry's watchers do. */
		usleep(200000);
		started = realtime_ns();
		write_exactly(to_reader[1], &started, sizeof started);
		for (int i = 0; i < n; i++) {
			if (write(sockets[i], answer, answer_bytes) != (ssize_t)answer_bytes)
				fail("write to a watcher");
		}
		read_exactly(from_reader[0], &signal, 1);
	}
	if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "fanout_floor: the reader failed\n");
		return 1;
	}
	return 0;
}
