/* keyleak: the kernel's keyrings are not per container: a pod's root (host root, without
 * --private-users) has host root's user keyring. From an app: its user and user-session keyrings'
 * IDs, a description and the key IDs they hold (host root's keys), and a key added to the user
 * keyring (the test looks for it from outside the pod). One line a try: TRY RESULT. It runs only
 * inside pods (its image holds /keyleak-image). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEY_SPEC_USER_KEYRING -4
#define KEY_SPEC_USER_SESSION_KEYRING -5
#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_DESCRIBE 6
#define KEYCTL_READ 11

static void report(const char *try, long r) {
	printf("%s %s\n", try, r >= 0 ? "ESCAPED" : (strerrorname_np(errno) ?: "EUNKNOWN"));
	fflush(stdout);
}

int main(int argc, char **argv) {
	if (access("/keyleak-image", F_OK) != 0 || argc < 2) {
		fprintf(stderr, "keyleak: not in its attack image, refused\n");
		return 2;
	}
	char buf[1024];
	report("keyctl:user-keyring", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0));
	report("keyctl:user-session", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_SESSION_KEYRING, 0));
	report("keyctl:describe", syscall(SYS_keyctl, KEYCTL_DESCRIBE, KEY_SPEC_USER_KEYRING, buf, sizeof buf));
	report("keyctl:read", syscall(SYS_keyctl, KEYCTL_READ, KEY_SPEC_USER_KEYRING, buf, sizeof buf));
	report("add_key:user", syscall(SYS_add_key, "user", argv[1], "planted", 7, KEY_SPEC_USER_KEYRING));
	report("request_key", syscall(SYS_request_key, "user", argv[1], NULL, 0));
	printf("done 0\n");
	return 0;
}
