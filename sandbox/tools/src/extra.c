/* libtoolextra.so.1, built twice: a baseline copy and a glibc-hwcaps/x86-64-v2 copy.
 * On a CPU with x86-64-v2 the loader picks the second, so the output names the one used. */
const char *extra_variant(void)
{
    return VARIANT;
}
