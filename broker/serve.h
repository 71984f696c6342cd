/* serve.h - `softlabel serve STORE --bind EP`: the read service that lets
 * students on other hosts read a logit cache (sl_reader.h is its client).
 *
 * One ROUTER socket, one thread, one request at a time. Every request is
 * answered from a fresh LMDB read snapshot taken for it and released
 * before the reply goes out, so the service never blocks the broker that
 * may be writing the same cache and never pins old pages between
 * requests. Replies are bounded (--max-reply-bytes of records, 64 Ki runs):
 * a prefix is answered and the client asks for the rest. */
#ifndef SERVE_H
#define SERVE_H

/* The whole subcommand: argv[0] is "serve". Exit status: 0 stopped by
 * SIGTERM/SIGINT, 1 runtime failure, 2 usage. */
int serve_main(int argc, char **argv);

#endif
