/* A guest written in C: a moving-average filter over sensor samples, which reports each
 * average to the host, and a Fletcher-16 checksum of a buffer the host fills. It shows
 * that any toolchain that makes a wasm32 module makes a guest; see README.md beside it
 * for the clang command. */

#define WINDOW 8

static int window[WINDOW];
static unsigned count;
static unsigned char data[256];

/* The host's `env.report`: called with each new average. */
__attribute__((import_module("env"), import_name("report"))) void report(int average);

/* Where the host writes the bytes `fletcher16` checks. */
__attribute__((export_name("buffer"))) unsigned char *buffer(void) {
    return data;
}

/* Adds a sample and returns the average of the last WINDOW samples (fewer at first). */
__attribute__((export_name("filter"))) int filter(int sample) {
    window[count % WINDOW] = sample;
    count++;
    int n = count < WINDOW ? (int)count : WINDOW;
    int sum = 0;
    for (int i = 0; i < n; i++) {
        sum += window[i];
    }
    int average = sum / n;
    report(average);
    return average;
}

/* Fletcher-16 of the first `len` bytes of the buffer. */
__attribute__((export_name("fletcher16"))) unsigned fletcher16(unsigned len) {
    unsigned a = 0, b = 0;
    for (unsigned i = 0; i < len && i < sizeof data; i++) {
        a = (a + data[i]) % 255;
        b = (b + a) % 255;
    }
    return (b << 8) | a;
}
