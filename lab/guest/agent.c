/* hcisim guest agent: the work of one lab VM, inside a busybox initramfs.
 *
 * Three jobs, parameters from the kernel command line (hcisim.KEY=VALUE):
 *   1. history writer: numbered records (the lab's history format, see
 *      hcisim/lab/history_writer.py: "NAME:SEQ(12 digits):BOOT:....\n", SIZE bytes,
 *      BOOT the id the harness gave this boot as hcisim.boot; without one the layout
 *      is "NAME:SEQ:....\n") at
 *      offset (seq % per_file) * size of the virtio disk, each made durable with
 *      O_DIRECT + fdatasync before it counts. The disk image on the volume is then
 *      segment 0 of the history, which the checker reads back from every brick.
 *   2. heartbeat: lines over the virtio-serial port "org.hcisim.agent"; the harness
 *      stamps them with its own clock (the guest's clock stops while it is paused).
 *   3. memory writer: a working set of mem_mib MiB, every page non-zero, dirtied at
 *      dirty_pages_s pages per second (what live migration has to chase).
 *   4. RAM check, before each record: HOT_PAGES pages must still hold the count stored
 *      the time before, then get the next. Pages stored to over and over are the ones a
 *      migration that loses dirty pages gets wrong (qemu 7.2 under TCG:
 *      hcisim/lab/guests/qemu.py, tcg_ram_kib); a page that went back in time is
 *      reported, so a guest whose RAM the migration lost says so itself.
 *
 * Lines sent (one write() each, under a lock):
 *   R name size per_file boot        ready: the agent runs (boot time ends here); boot
 *                                    is the id every record carries ("-": none)
 *   I seq                            an attempt starts
 *   A seq latency_us                 record seq is durable
 *   E seq errno                      the attempt failed (retried)
 *   H acked last_latency_us inflight_us dirtied_pages    every hb_ms
 *   F seq                            the disk is full, writing stopped
 *   C page expected found            RAM check: a hot page lost a store
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SECTOR 512

static char name[64] = "vm";
static long rec_size = 64, per_file = 65536, interval_ms = 20, hb_ms = 100;
static long mem_mib = 0, dirty_pages_s = 0;
static char disk_path[64] = "/dev/vda";
static char boot_id[17] = ""; /* hcisim.boot: [0-9a-z]{1,16}, given per boot by the harness */

static int port = -1;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long acked = 0, last_lat_us = 0, dirtied = 0;
static int64_t inflight_since = 0; /* monotonic us; 0: no write in flight */

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us) {
    if (us <= 0) return;
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static void send_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void send_line(const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n <= 0 || port < 0) return;
    pthread_mutex_lock(&lock);
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(port, buf + off, (size_t)(n - off));
        if (w < 0) { if (errno == EINTR) continue; break; }
        off += w;
    }
    pthread_mutex_unlock(&lock);
}

static void parse_cmdline(void) {
    char buf[4096];
    int fd = open("/proc/cmdline", O_RDONLY);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n")) {
        if (strncmp(tok, "hcisim.", 7) != 0) continue;
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        const char *k = tok + 7, *v = eq + 1;
        if (!strcmp(k, "name")) snprintf(name, sizeof name, "%s", v);
        else if (!strcmp(k, "disk")) snprintf(disk_path, sizeof disk_path, "%s", v);
        else if (!strcmp(k, "size")) rec_size = atol(v);
        else if (!strcmp(k, "per_file")) per_file = atol(v);
        else if (!strcmp(k, "interval_ms")) interval_ms = atol(v);
        else if (!strcmp(k, "hb_ms")) hb_ms = atol(v);
        else if (!strcmp(k, "mem_mib")) mem_mib = atol(v);
        else if (!strcmp(k, "dirty_pages_s")) dirty_pages_s = atol(v);
        else if (!strcmp(k, "boot")) snprintf(boot_id, sizeof boot_id, "%s", v);
    }
}

/* The virtio-serial port named org.hcisim.agent (no udev here: look it up in sysfs). */
static int open_port(void) {
    for (int tries = 0; tries < 200; tries++) {
        DIR *d = opendir("/sys/class/virtio-ports");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char path[300], pname[128] = "";
            snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
            FILE *f = fopen(path, "r");
            if (!f) continue;
            if (fgets(pname, sizeof pname, f)) pname[strcspn(pname, "\n")] = 0;
            fclose(f);
            if (!strcmp(pname, "org.hcisim.agent")) {
                snprintf(path, sizeof path, "/dev/%s", e->d_name);
                int fd = open(path, O_WRONLY);
                closedir(d);
                return fd;
            }
        }
        if (d) closedir(d);
        sleep_us(50000);
    }
    return -1;
}

#define HOT_PAGES 16

/* The RAM check, once per record: each hot page must hold the count stored last time. */
static void check_ram(void) {
    static unsigned char *hot;
    static long page;
    static uint64_t round;
    if (!hot) {
        page = sysconf(_SC_PAGESIZE);
        hot = mmap(NULL, HOT_PAGES * (size_t)page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (hot == MAP_FAILED) { hot = NULL; return; }
    }
    for (int i = 0; i < HOT_PAGES; i++) {
        volatile uint64_t *slot = (volatile uint64_t *)(hot + (size_t)i * (size_t)page);
        uint64_t found = *slot;
        if (found != round) send_line("C %d %llu %llu\n", i, (unsigned long long)round,
                                      (unsigned long long)found);
        *slot = round + 1;
    }
    round++;
}

static void *heartbeat(void *arg) {
    (void)arg;
    for (;;) {
        sleep_us(hb_ms * 1000);
        int64_t since = __atomic_load_n(&inflight_since, __ATOMIC_RELAXED);
        long inflight = since ? (long)(now_us() - since) : 0;
        send_line("H %ld %ld %ld %ld\n", __atomic_load_n(&acked, __ATOMIC_RELAXED),
                  __atomic_load_n(&last_lat_us, __ATOMIC_RELAXED), inflight,
                  __atomic_load_n(&dirtied, __ATOMIC_RELAXED));
    }
    return NULL;
}

static void *memory_writer(void *arg) {
    (void)arg;
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = (size_t)mem_mib * 1024 * 1024 / (size_t)page;
    unsigned char *mem = mmap(NULL, pages * (size_t)page, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED || pages == 0) return NULL;
    for (size_t i = 0; i < pages * (size_t)page; i++) mem[i] = (unsigned char)(i | 1);
    if (dirty_pages_s <= 0) return NULL;
    int64_t t0 = now_us();
    size_t next = 0;
    uint64_t done = 0, stamp = 1;
    for (;;) {
        uint64_t want = (uint64_t)((now_us() - t0) * dirty_pages_s / 1000000);
        for (; done < want; done++) {
            *(uint64_t *)(mem + next * (size_t)page) = ++stamp;
            next = (next + 1) % pages;
        }
        __atomic_store_n(&dirtied, (long)done, __ATOMIC_RELAXED);
        sleep_us(10000);
    }
    return NULL;
}

/* The record's header, as hcisim/lab/history_writer.py's record_header; its length. */
static int record_head(char *dst, size_t cap, long seq) {
    return boot_id[0] ? snprintf(dst, cap, "%s:%012ld:%s:", name, seq, boot_id)
                      : snprintf(dst, cap, "%s:%012ld:", name, seq);
}

static void make_record(char *dst, long seq) {
    int head = record_head(dst, (size_t)rec_size, seq);
    memset(dst + head, '.', (size_t)(rec_size - head - 1));
    dst[rec_size - 1] = '\n';
}

int main(void) {
    parse_cmdline();
    port = open_port();
    if (port < 0) { fprintf(stderr, "agent: no virtio-serial port org.hcisim.agent\n"); }
    if (rec_size < 32 || rec_size > SECTOR || SECTOR % rec_size) {
        fprintf(stderr, "agent: record size %ld must divide %d\n", rec_size, SECTOR);
        return 2;
    }
    for (const char *c = boot_id; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z'))) {
            fprintf(stderr, "agent: hcisim.boot=%s: only [0-9a-z]\n", boot_id);
            return 2;
        }
    char probe[SECTOR + 64];
    if (record_head(probe, sizeof probe, per_file) >= rec_size) {
        fprintf(stderr, "agent: a record header of %s (boot %s) does not fit %ld bytes\n",
                name, boot_id, rec_size);
        return 2;
    }
    int disk = open(disk_path, O_RDWR | O_DIRECT);
    if (disk < 0) { perror("agent: open disk"); return 2; }
    void *sector;
    if (posix_memalign(&sector, 4096, SECTOR)) return 2;
    memset(sector, 0, SECTOR);
    long cur_sector = -1;
    pthread_t t;
    pthread_create(&t, NULL, heartbeat, NULL);
    if (mem_mib > 0) pthread_create(&t, NULL, memory_writer, NULL);
    send_line("R %s %ld %ld %s\n", name, rec_size, per_file, boot_id[0] ? boot_id : "-");
    for (long seq = 0;;) {
        if (seq >= per_file) { send_line("F %ld\n", seq); for (;;) sleep_us(1000000); }
        check_ram();
        int64_t t_issue = now_us();
        long off = (seq % per_file) * rec_size;
        long sec = off - off % SECTOR;
        if (sec != cur_sector) { memset(sector, 0, SECTOR); cur_sector = sec; }
        make_record((char *)sector + (off - sec), seq);
        send_line("I %ld\n", seq);
        __atomic_store_n(&inflight_since, t_issue, __ATOMIC_RELAXED);
        ssize_t w = pwrite(disk, sector, SECTOR, sec);
        int err = (w == SECTOR) ? 0 : (w < 0 ? errno : EIO);
        if (!err && fdatasync(disk) < 0) err = errno;
        int64_t t_done = now_us();
        __atomic_store_n(&inflight_since, 0, __ATOMIC_RELAXED);
        if (err) {
            send_line("E %ld %d\n", seq, err);
            sleep_us(interval_ms * 1000);
            continue;
        }
        __atomic_store_n(&last_lat_us, (long)(t_done - t_issue), __ATOMIC_RELAXED);
        __atomic_add_fetch(&acked, 1, __ATOMIC_RELAXED);
        send_line("A %ld %ld\n", seq, (long)(t_done - t_issue));
        seq++;
        sleep_us(interval_ms * 1000 - (now_us() - t_issue));
    }
}
