/* A stand-in for 0.1's libhugeslab.so.0, for the link of tests/abi_test.c's
 * abi_0_1 only: its soname, and hugeslab_stats without a symbol version, as
 * 0.1 exported it, so that the program's reference is the one every program
 * linked against 0.1 holds. The program runs on the built library. */
void hugeslab_stats(void *out);
void hugeslab_stats(void *out) { (void)out; }
