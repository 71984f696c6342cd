#!/usr/bin/python3
"""Run a command on a pseudo-terminal (its stdin, stdout and stderr) for
SECS seconds, then SIGINT it; write everything it printed to OUT and exit
with its exit status (124 if it outlived the SIGINT by 10 s, then killed).
A negative SECS sends no SIGINT: the command may run -SECS seconds, then it
is killed (124). Every wait is bounded.

    watch_tty.py SECS OUT cmd...
"""
import os
import pty
import select
import signal
import sys
import time

secs, out, cmd = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(cmd[0], cmd)
got, start, sent = b"", time.monotonic(), None
status = None
while status is None:
    now = time.monotonic()
    if secs < 0 and now - start >= -secs:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status = 124
        break
    if secs >= 0 and sent is None and now - start >= secs:
        os.kill(pid, signal.SIGINT)
        sent = now
    if sent is not None and now - sent > 10:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status = 124
        break
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        got += chunk
    wpid, st = os.waitpid(pid, os.WNOHANG)
    if wpid == pid:
        status = os.waitstatus_to_exitcode(st)
        try:
            while True:
                r, _, _ = select.select([fd], [], [], 0.1)
                if not r:
                    break
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
open(out, "wb").write(got)
sys.exit(status if status >= 0 else 128 - status)
