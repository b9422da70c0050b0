/*
 * hello - smoke test for the kit: serial output, the command line, timer
 * interrupts with sleep_ticks(), rdtsc, markers and exit.
 *
 * The serial output is identical on every host: ticks are numbered by the
 * loop counter, and the rdtsc value only goes out as a marker.
 */
#include "vmrr.h"

int kmain(struct hvm_start_info *si)
{
    (void)si;
    printf("hello from vmrr\n");
    printf("cmdline: %s\n", cmdline());

    pit_init(1000);
    for (int i = 1; i <= 3; i++) {
        sleep_ticks(1);
        printf("tick %d\n", i);
    }

    uint64_t tsc = rdtsc();
    marker("tsc", (uint32_t)tsc);
    marker("done", 0);

    printf("bye\n");
    exit(0);
}
