/* libtoolcore.so.1: needs libtoolextra.so.1 (found only through the image's
 * LD_LIBRARY_PATH) and libz.so.1 (found through /etc/ld.so.cache). */
#include <stdio.h>

const char *zlibVersion(void);
const char *extra_variant(void);

const char *core_version(void)
{
    static char buf[160];
    snprintf(buf, sizeof buf, "core 1.0, zlib %s, extra %s", zlibVersion(), extra_variant());
    return buf;
}
