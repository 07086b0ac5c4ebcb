/*
 * bench.h - modes of sluice-bench implemented in other files.
 *
 * sl_bench_stomp_main (bench/sluice_bench_stomp.c): `sluice-bench stomp
 * ...`; receives the whole argv (argv[1] == "stomp").
 */
#ifndef SL_BENCH_H
#define SL_BENCH_H

int sl_bench_stomp_main(int argc, char **argv);

#endif
