/*
 * bench.h - modes of sluice-bench implemented in other files.
 *
 * sl_bench_stomp_main (bench/sluice_bench_stomp.c): `sluice-bench stomp
 * ...`; receives the whole argv (argv[1] == "stomp").
 */
#ifndef SL_BENCH_H
#define SL_BENCH_H

int sl_bench_stomp_main(int argc, char **argv);
/* sl_bench_mux_main (bench/sluice_bench_mux.c): `sluice-bench produce-mux
 * ...`, N producer connections on one thread (argv[1] == "produce-mux"). */
int sl_bench_mux_main(int argc, char **argv);

#endif
