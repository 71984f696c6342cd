/* sl_metrics: the exposition text (escaping, numbers) and the HTTP server
 * on a real loopback socket: a scrape waits for the owner's text, gets it
 * whole, gets the last text marked stale when the owner does not answer,
 * 503 before any text, 404 and 405 elsewhere; bad and taken addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sl_metrics.h"

static void
test_text_samples(void **state)
{
	sl_metrics_text t = { 0 };

	(void)state;
	sl_metrics_family(&t, "x_total", "counter", "Things.");
	sl_metrics_sample(&t, "x_total", NULL, 42);
	sl_metrics_sample(&t, "x_total", (const char *[]){ "a", "b\"c\\d\ne",
	    "k", "v", NULL }, 0.25);
	sl_metrics_sample(&t, "big", NULL, 9007199254740991.0);
	sl_metrics_sample(&t, "inf", NULL, 1.0 / 0.0);
	sl_metrics_sample(&t, "nan", NULL, 0.0 / 0.0);
	assert_false(t.oom);
	assert_string_equal(t.p,
	    "# HELP x_total Things.\n# TYPE x_total counter\n"
	    "x_total 42\n"
	    "x_total{a=\"b\\\"c\\\\d\\ne\",k=\"v\"} 0.25\n"
	    "big 9007199254740991\n"
	    "inf +Inf\n"
	    "nan NaN\n");
	assert_int_equal(t.len, strlen(t.p));
	sl_metrics_text_reset(&t);
	assert_int_equal(t.len, 0);
	/* Growth past the first block keeps every byte. */
	for (int i = 0; i < 2000; i++)
		sl_metrics_sample(&t, "m", (const char *[]){ "i", "0123456789",
		    NULL }, i);
	assert_int_equal(t.len, strlen(t.p));
	assert_non_null(strstr(t.p, "m{i=\"0123456789\"} 1999\n"));
	sl_metrics_text_fini(&t);
}

static void
test_check_addr(void **state)
{
	static const char *const bad[] = { "", "9100", "127.0.0.1", ":9100",
	    "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:91x",
	    "::1:9100", "[::1]9100", "no-such-host.invalid:9100",
	    "tcp://127.0.0.1:9100" };
	sl_errmsg why = { "" };

	(void)state;
	assert_int_equal(sl_metrics_check_addr("127.0.0.1:9100", &why), 0);
	assert_int_equal(sl_metrics_check_addr("localhost:0", &why), 0);
	assert_int_equal(sl_metrics_check_addr("[::1]:9100", &why), 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why.text[0] = '\0';
		assert_int_equal(sl_metrics_check_addr(bad[i], &why), SL_EINVAL);
		assert_true(why.text[0] != '\0');
		assert_null(strchr(why.text, '\n'));
	}
}

/* One HTTP exchange on a fresh connection; the whole answer in out. */
typedef struct client {
	int port;
	const char *request;
	char out[65536];
	size_t n;
	atomic_int done;      /* set when the exchange ended */
} client;

static void *
client_run(void *arg)
{
	client *c = arg;
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t k;

	c->n = 0;
	c->out[0] = '\0';
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)c->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    write(fd, c->request, strlen(c->request)) < 0) {
		if (fd >= 0)
			close(fd);
		atomic_store(&c->done, 1);
		return NULL;
	}
	while (c->n < sizeof c->out - 1 &&
	    (k = read(fd, c->out + c->n, sizeof c->out - 1 - c->n)) > 0)
		c->n += (size_t)k;
	c->out[c->n] = '\0';
	close(fd);
	atomic_store(&c->done, 1);
	return NULL;
}

#define GET "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

/* Answer scrapes with text as an owner does until the client's exchange
 * ends (at most rounds polls of 100 ms); how many texts were published. A
 * scrape that timed out earlier leaves its wake behind, so one exchange
 * may take two texts. */
static int
owner_answer(sl_metrics *m, client *c, const char *text, int rounds)
{
	struct pollfd p = { sl_metrics_fd(m), POLLIN, 0 };
	int served = 0;

	for (int i = 0; i < rounds && !atomic_load(&c->done); i++) {
		if (poll(&p, 1, 100) == 1) {
			uint64_t gen = sl_metrics_begin(m);

			if (gen != 0) {
				assert_int_equal(sl_metrics_publish(m, gen, text,
				    strlen(text)), 0);
				served++;
			}
		}
	}
	return served;
}

/* client_run on its own thread, answered by this one as the owner. */
static int
scrape_answered(sl_metrics *m, client *c, const char *text)
{
	pthread_t th;
	int served;

	atomic_store(&c->done, 0);
	assert_int_equal(pthread_create(&th, NULL, client_run, c), 0);
	served = owner_answer(m, c, text, 100);
	pthread_join(th, NULL);
	return served;
}

static void
test_server(void **state)
{
	sl_metrics *m = NULL;
	sl_errmsg why = { "" };
	static client c;
	const char *body;

	(void)state;
	assert_int_equal(sl_metrics_open("127.0.0.1:0", &m, &why), 0);
	c.port = sl_metrics_port(m);
	assert_true(c.port > 0);

	/* Before any text: 503 once the wait runs out. */
	c.request = GET;
	client_run(&c);
	assert_non_null(strstr(c.out, "HTTP/1.1 503"));

	/* The owner answers: 200, its text whole, the exposition type. */
	assert_true(scrape_answered(m, &c, "a_total 1\nb 2\n") >= 1);
	assert_non_null(strstr(c.out, "HTTP/1.1 200"));
	assert_non_null(strstr(c.out, "text/plain; version=0.0.4"));
	body = strstr(c.out, "\r\n\r\n");
	assert_non_null(body);
	assert_string_equal(body + 4, "a_total 1\nb 2\n");

	/* A second scrape gets a new text, not the first one again. */
	assert_true(scrape_answered(m, &c, "a_total 2\n") >= 1);
	body = strstr(c.out, "\r\n\r\n");
	assert_non_null(body);
	assert_string_equal(body + 4, "a_total 2\n");

	/* The owner does not answer: the last text, marked stale. */
	client_run(&c);
	assert_non_null(strstr(c.out, "HTTP/1.1 200"));
	body = strstr(c.out, "\r\n\r\n");
	assert_non_null(body);
	assert_non_null(strstr(body, "# stale:"));
	assert_non_null(strstr(body, "\na_total 2\n"));

	/* Other paths and methods. */
	c.request = "GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	client_run(&c);
	assert_non_null(strstr(c.out, "HTTP/1.1 404"));
	c.request = "POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	    "Content-Length: 0\r\n\r\n";
	client_run(&c);
	assert_non_null(strstr(c.out, "HTTP/1.1 405"));

	/* The port is taken while the server holds it. */
	{
		char addr[32];
		sl_metrics *m2 = NULL;

		snprintf(addr, sizeof addr, "127.0.0.1:%d", c.port);
		assert_int_equal(sl_metrics_open(addr, &m2, &why), EADDRINUSE);
		assert_null(m2);
		assert_non_null(strstr(why.text, "in use"));
	}
	sl_metrics_close(&m);
	assert_null(m);
	sl_metrics_close(&m); /* NULL is fine */
}

/* A scrape waiting for the owner is released when the server closes. */
static void
test_close_releases_waiter(void **state)
{
	sl_metrics *m = NULL;
	sl_errmsg why = { "" };
	struct pollfd p;
	static client c;
	pthread_t th;

	(void)state;
	assert_int_equal(sl_metrics_open("127.0.0.1:0", &m, &why), 0);
	c.port = sl_metrics_port(m);
	c.request = GET;
	assert_int_equal(pthread_create(&th, NULL, client_run, &c), 0);
	p.fd = sl_metrics_fd(m);
	p.events = POLLIN;
	assert_int_equal(poll(&p, 1, 5000), 1); /* the scrape is waiting */
	sl_metrics_close(&m);
	pthread_join(th, NULL);
	assert_null(strstr(c.out, "HTTP/1.1 200"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_samples),
		cmocka_unit_test(test_check_addr),
		cmocka_unit_test(test_server),
		cmocka_unit_test(test_close_releases_waiter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
