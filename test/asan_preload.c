/*
 * asan_preload.c: preloaded after gcc's ASan runtime by test/asan.sh.
 *
 * On Debian 12, PostgreSQL's binaries pull in libp11-kit (through libldap
 * and libgnutls), whose constructor runs before the preloaded runtime's and
 * calls malloc() inside newlocale().  That first malloc() initializes ASan,
 * which looks up the symbol swift_demangle; the failed lookup makes dlerror()
 * translate its message with gettext while newlocale() is still running, and
 * that leaves glibc's gettext lock in a state where the next bindtextdomain()
 * (PostgreSQL's, at the start of main) waits forever.  Defining the symbol
 * makes the lookup succeed, so no message is translated.  ASan calls it only
 * to demangle Swift names; returning NULL means "not a Swift name".
 */
#include <stddef.h>
#include <stdint.h>

extern char *swift_demangle(const char *mangled, size_t mangled_len,
							char *out, size_t *out_len, uint32_t flags);

char *
swift_demangle(const char *mangled, size_t mangled_len,
			   char *out, size_t *out_len, uint32_t flags)
{
	return NULL;
}
