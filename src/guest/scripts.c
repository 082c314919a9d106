/* scripts.c - the embedded Python and JavaScript programs (scripts.h). */
#include "guest/scripts.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fdio.h"

/* Each text between a start and an end symbol, NUL-terminated; the Makefile rebuilds this file
 * when a script changes. */
#define EMBED(sym, file)                                                                   \
	__asm__(".section .rodata\n.balign 16\n.type " #sym ", @object\n" #sym ":\n"       \
		".incbin \"src/guest/scripts/" file "\"\n" #sym "_end:\n.byte 0\n.previous\n")

EMBED(guest_context_py, "context.py");
EMBED(guest_forkserver_py, "forkserver.py");
EMBED(guest_context_js, "context.js");

extern const char guest_context_py[], guest_context_py_end[];
extern const char guest_forkserver_py[], guest_forkserver_py_end[];
extern const char guest_context_js[], guest_context_js_end[];

const char *guest_script_text(enum guest_script which, size_t *len)
{
	switch (which) {
	case GUEST_SCRIPT_FORKSERVER:
		*len = (size_t)(guest_forkserver_py_end - guest_forkserver_py);
		return guest_forkserver_py;
	case GUEST_SCRIPT_CONTEXT_NODE:
		*len = (size_t)(guest_context_js_end - guest_context_js);
		return guest_context_js;
	case GUEST_SCRIPT_CONTEXT:
		break;
	}
	*len = (size_t)(guest_context_py_end - guest_context_py);
	return guest_context_py;
}

int guest_script_install(enum guest_script which, const char *path, struct ember_error **err)
{
	size_t len;
	const char *text = guest_script_text(which, &len);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0)
		return ember_error_sys(err, "create `%s`", path);
	if (fchmod(fd, 0644) < 0 || fd_write_all(fd, text, len, -1, err) < 0) {
		ember_error_sys(err, "write `%s`", path);
		close(fd);
		unlink(path);
		return -1;
	}
	if (close(fd) < 0)
		return ember_error_sys(err, "close `%s`", path);
	return 0;
}
