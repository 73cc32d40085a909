// See nsenter.go for the protocol. Runs before the Go runtime: plain libc only.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

#define MAX_JOIN 16

static int pipefd = -1;

static void reply(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n >= (int)sizeof(buf))
		n = sizeof(buf) - 1;
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(pipefd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= w;
	}
}

static void fail(const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply("error %s: %s\n", msg, strerror(errno));
	_exit(1);
}

static int nstype(const char *t)
{
	if (!strcmp(t, "user")) return CLONE_NEWUSER;
	if (!strcmp(t, "mount") || !strcmp(t, "mnt")) return CLONE_NEWNS;
	if (!strcmp(t, "pid")) return CLONE_NEWPID;
	if (!strcmp(t, "network") || !strcmp(t, "net")) return CLONE_NEWNET;
	if (!strcmp(t, "ipc")) return CLONE_NEWIPC;
	if (!strcmp(t, "uts")) return CLONE_NEWUTS;
	if (!strcmp(t, "cgroup")) return CLONE_NEWCGROUP;
	if (!strcmp(t, "time")) return CLONE_NEWTIME;
	return 0;
}

static void write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open %s", path);
	size_t len = strlen(data);
	if (write(fd, data, len) != (ssize_t)len)
		fail("write %s", path);
	close(fd);
}

void berth_nsenter(void)
{
	const char *env = getenv("_BERTH_INITPIPE");
	if (!env || !*env)
		return;
	pipefd = atoi(env);
	if (pipefd < 3) {
		fprintf(stderr, "berth-runtime: bad _BERTH_INITPIPE\n");
		_exit(1);
	}

	int join_fd[MAX_JOIN], join_type[MAX_JOIN], njoin = 0;
	int new_pid = 0, new_cgroup = 0, new_time = 0;
	char timeoffs[256] = "";
	// The socket is SOCK_SEQPACKET: the whole bootstrap is one packet, so
	// one read takes exactly it and leaves the Go side's messages alone.
	static char msg[65536];
	ssize_t got;
	do {
		got = read(pipefd, msg, sizeof(msg) - 1);
	} while (got < 0 && errno == EINTR);
	if (got <= 0)
		_exit(1); // the parent went away before telling us what to do
	msg[got] = 0;
	int ended = 0;
	for (char *line = msg, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (!strcmp(line, "end")) {
			ended = 1;
			break;
		}
		if (!strncmp(line, "join ", 5)) {
			char *type = line + 5, *path = strchr(type, ' ');
			if (!path)
				continue;
			*path++ = 0;
			int t = nstype(type);
			if (!t) {
				errno = EINVAL;
				fail("join: unknown namespace type %s", type);
			}
			if (njoin == MAX_JOIN) {
				errno = E2BIG;
				fail("join: too many namespaces");
			}
			// Open every path before joining any: after setns(mnt) the
			// paths would resolve in the container's filesystem.
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				fail("open namespace %s", path);
			join_fd[njoin] = fd;
			join_type[njoin++] = t;
		} else if (!strcmp(line, "unshare-pid")) {
			new_pid = 1;
		} else if (!strcmp(line, "unshare-cgroup")) {
			new_cgroup = 1;
		} else if (!strncmp(line, "timens ", 7)) {
			long long ms, mns, bs, bns;
			if (sscanf(line + 7, "%lld %lld %lld %lld", &ms, &mns, &bs, &bns) != 4) {
				errno = EINVAL;
				fail("timens: bad offsets");
			}
			snprintf(timeoffs, sizeof(timeoffs), "monotonic %lld %lld\nboottime %lld %lld\n", ms, mns, bs, bns);
			new_time = 1;
		}
	}
	if (!ended) {
		errno = EPROTO;
		fail("bootstrap message truncated");
	}

	// The user namespace first, so that joining the rest is judged by the
	// credentials it grants; the mount namespace last.
	int order[] = {CLONE_NEWUSER, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWCGROUP, CLONE_NEWTIME, CLONE_NEWNS};
	int joined_pid = 0, joined_time = 0;
	for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++) {
		for (int i = 0; i < njoin; i++) {
			if (join_type[i] != order[o])
				continue;
			if (setns(join_fd[i], join_type[i]) < 0)
				fail("setns %d", join_type[i]);
			close(join_fd[i]);
			if (join_type[i] == CLONE_NEWPID)
				joined_pid = 1;
			if (join_type[i] == CLONE_NEWTIME)
				joined_time = 1;
		}
	}
	if (new_cgroup && unshare(CLONE_NEWCGROUP) < 0)
		fail("unshare cgroup namespace");
	if (new_time) {
		if (unshare(CLONE_NEWTIME) < 0)
			fail("unshare time namespace");
		write_file("/proc/self/timens_offsets", timeoffs);
	}
	if (new_pid && unshare(CLONE_NEWPID) < 0)
		fail("unshare pid namespace");

	// setns(pid), unshare(pid) and unshare(time) take effect for children
	// only: fork, report the child, and let the intermediate go.
	if (new_pid || joined_pid || new_time || joined_time) {
		pid_t child = fork();
		if (child < 0)
			fail("fork");
		if (child > 0) {
			reply("pid %d\n", child);
			_exit(0);
		}
	} else {
		reply("pid %d\n", getpid());
	}
}
