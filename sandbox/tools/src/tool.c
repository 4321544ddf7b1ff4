/* /opt/tool/bin/tool: finds libtoolcore.so.1 only through its RUNPATH $ORIGIN/../lib. */
#include <stdio.h>

const char *core_version(void);

int main(void)
{
    printf("tool 1.0: %s\n", core_version());
    return 0;
}
