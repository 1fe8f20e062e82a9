/* leasehold: take a write lease on each file named (an app owns its files, so it may), then hold
 * them: whoever else opens one then waits until the lease is given up, or until the kernel breaks
 * it (/proc/sys/fs/lease-break-time, 45 s by default), unless it opens O_NONBLOCK (EWOULDBLOCK).
 * An app that holds one on every file would stall a host's copy of them file by file.
 *
 * Prints `lease:PATH HELD` or `lease:PATH ERRNO`, then waits for ever, the lease breaks ignored. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	signal(SIGIO, SIG_IGN); /* a lease break's notice: never answered */
	for (int i = 1; i < argc; i++) {
		int fd = open(argv[i], O_RDWR);
		if (fd < 0 || fcntl(fd, F_SETLEASE, F_WRLCK) < 0)
			printf("lease:%s %s\n", argv[i], strerrorname_np(errno));
		else
			printf("lease:%s HELD\n", argv[i]);
	}
	fflush(stdout);
	for (;;)
		pause();
}
