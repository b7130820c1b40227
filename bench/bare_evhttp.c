/*
 * bare_evhttp: the floor the registry is measured against.
 *
 * A single-threaded libevent evhttp server that answers every request, on any
 * path and with any allowed method, with one fixed JSON body.  It does the
 * least work an evhttp server can do per request (parse, one generic callback,
 * reply from a buffer it never copies), so the registry's ratio to it is the
 * cost of the registry's own logic on top of the same HTTP stack.
 *
 * Set-up follows libevent's sample/http-server.c, and the limits mirror what
 * the registry sets, because libevent's defaults are unlimited and a baseline
 * that skips the checks would flatter itself.
 *
 * usage: bare_evhttp [-a ADDRESS] [-p PORT] [-w] (-b BODY | -f BODY_FILE)
 * -w writes each reply at once and batches epoll changes, as the registry does;
 * the benchmark's baseline runs without it.
 * With -p 0 (the default) the kernel picks the port.  Once listening it prints
 * "bare_evhttp listening on ADDRESS:PORT" on stdout.  SIGINT and SIGTERM stop
 * it cleanly.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

/* Same order of magnitude as the registry's limits: small JSON in, small out. */
enum {
	MAX_BODY_BYTES = 64 * 1024,
	MAX_HEADERS_BYTES = 8 * 1024,
	IDLE_TIMEOUT_SECONDS = 60,
	/* A 100-instance discover body is about 7 KiB; leave generous room. */
	MAX_REPLY_BYTES = 4 * 1024 * 1024,
};

struct reply {
	char *body;
	size_t length;
};

/* -w: the two changes the registry makes to how evhttp sends (see
 * writeQueuedReply in Sources/Server/HTTP/PendingRequest.swift), so that the
 * registry can also be compared with an evhttp server that makes them. */
static int write_at_once;

/* Writes the reply evhttp has just queued at once, and finishes the request as
 * the bufferevent would once its output has drained. */
static void
write_queued_reply(struct evhttp_connection *connection)
{
	struct bufferevent *bev;
	struct evbuffer *output;
	bufferevent_data_cb write_cb;
	void *context;
	int written;

	if (connection == NULL || (bev = evhttp_connection_get_bufferevent(connection)) == NULL)
		return;
	output = bufferevent_get_output(bev);
	if (evbuffer_get_length(output) == 0)
		return;
	evbuffer_unfreeze(output, 1);
	written = evbuffer_write(output, bufferevent_getfd(bev));
	evbuffer_freeze(output, 1);
	if (written <= 0 || evbuffer_get_length(output) != 0)
		return;
	bufferevent_getcb(bev, NULL, &write_cb, NULL, &context);
	if (write_cb != NULL)
		write_cb(bev, context);
}

/* Every request gets the same bytes.  evbuffer_add_reference hands libevent a
 * pointer to the body instead of a copy; the body lives until exit. */
static void
answer_cb(struct evhttp_request *req, void *arg)
{
	const struct reply *reply = arg;
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	struct evhttp_connection *connection = evhttp_request_get_connection(req);

	if (evbuffer_add_reference(out, reply->body, reply->length, NULL, NULL) != 0) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evhttp_send_reply(req, HTTP_OK, "OK", NULL);
	if (write_at_once)
		write_queued_reply(connection);
}

static void
stop_cb(evutil_socket_t sig, short events, void *arg)
{
	(void)sig;
	(void)events;
	event_base_loopbreak(arg);
}

/* Reads the whole file into a heap buffer.  Returns 0 on success, -1 (with a
 * message on stderr) when the file cannot be read or exceeds MAX_REPLY_BYTES. */
static int
read_body_file(const char *path, struct reply *reply)
{
	FILE *file = fopen(path, "rb");
	if (file == NULL) {
		fprintf(stderr, "bare_evhttp: %s: %s\n", path, strerror(errno));
		return -1;
	}
	reply->body = malloc(MAX_REPLY_BYTES);
	if (reply->body == NULL) {
		fclose(file);
		return -1;
	}
	reply->length = fread(reply->body, 1, MAX_REPLY_BYTES, file);
	int failed = ferror(file) || !feof(file);
	fclose(file);
	if (failed) {
		fprintf(stderr, "bare_evhttp: %s: unreadable or larger than %d bytes\n",
		    path, MAX_REPLY_BYTES);
		return -1;
	}
	return 0;
}

static void
usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-a ADDRESS] [-p PORT] [-w] (-b BODY | -f BODY_FILE)\n", prog);
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *address = "127.0.0.1";
	int port = 0;
	struct reply reply = { NULL, 0 };
	int opt;

	while ((opt = getopt(argc, argv, "a:p:b:f:w")) != -1) {
		switch (opt) {
		case 'a': address = optarg; break;
		case 'w': write_at_once = 1; break;
		case 'p': port = atoi(optarg); break;
		case 'b':
			reply.body = optarg;
			reply.length = strlen(optarg);
			break;
		case 'f':
			if (read_body_file(optarg, &reply) != 0)
				return 1;
			break;
		default: usage(argv[0]);
		}
	}
	if (reply.body == NULL || optind != argc || port < 0 || port > 65535)
		usage(argv[0]);

	/* A peer that closes mid-reply must cost an EPIPE, not the process. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* One thread owns the base, so it needs no locks (as in memcached). */
	struct event_config *cfg = event_config_new();
	if (cfg == NULL)
		return 1;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	if (write_at_once)
		event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	struct event_base *base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (base == NULL) {
		fprintf(stderr, "bare_evhttp: cannot create an event_base\n");
		return 1;
	}

	struct evhttp *http = evhttp_new(base);
	if (http == NULL) {
		fprintf(stderr, "bare_evhttp: cannot create evhttp\n");
		return 1;
	}
	evhttp_set_max_body_size(http, MAX_BODY_BYTES);
	evhttp_set_max_headers_size(http, MAX_HEADERS_BYTES);
	evhttp_set_timeout(http, IDLE_TIMEOUT_SECONDS);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
	evhttp_set_default_content_type(http, "application/json");
	evhttp_set_gencb(http, answer_cb, &reply);

	struct evhttp_bound_socket *handle =
	    evhttp_bind_socket_with_handle(http, address, (ev_uint16_t)port);
	if (handle == NULL) {
		fprintf(stderr, "bare_evhttp: cannot bind %s:%d\n", address, port);
		return 1;
	}

	/* Same as the registry: accepted sockets inherit TCP_NODELAY from the listener,
	 * so replies larger than one write do not wait on Nagle and delayed ACKs. */
	int no_delay = 1;
	if (setsockopt(evhttp_bound_socket_get_fd(handle), IPPROTO_TCP, TCP_NODELAY,
	    &no_delay, sizeof(no_delay)) != 0) {
		perror("bare_evhttp: setsockopt TCP_NODELAY");
		return 1;
	}

	struct sockaddr_in bound;
	socklen_t bound_length = sizeof(bound);
	if (getsockname(evhttp_bound_socket_get_fd(handle),
	    (struct sockaddr *)&bound, &bound_length) != 0) {
		perror("bare_evhttp: getsockname");
		return 1;
	}

	struct event *sigint = evsignal_new(base, SIGINT, stop_cb, base);
	struct event *sigterm = evsignal_new(base, SIGTERM, stop_cb, base);
	if (sigint == NULL || sigterm == NULL ||
	    event_add(sigint, NULL) != 0 || event_add(sigterm, NULL) != 0)
		return 1;

	printf("bare_evhttp listening on %s:%d\n", address, ntohs(bound.sin_port));
	event_base_dispatch(base);

	/* Tear down in the reverse order of set-up, as the libevent sample does. */
	event_free(sigterm);
	event_free(sigint);
	evhttp_free(http);
	event_base_free(base);
	return 0;
}
