/*
 * fdcache.c - the open-file cache: a bounded LRU of segment .log
 * descriptors, so the number of partitions is not bounded by RLIMIT_NOFILE.
 *
 * WHY. A partition used to keep its active segment's .log open for its
 * whole life (and every closed segment's too): 10,000 partitions held
 * 10,037 descriptors, and 100,000 could not exist under this machine's
 * hard limit of 20,000 (issue 18, finding 11; issue 20, item 2). Kafka
 * and LevelDB keep a table/segment cache instead; so do we.
 *
 * THE RULE. A segment's `fd` is -1 while it is closed. Every use on the
 * loop thread goes through sl_seg_fd(), which opens the file when needed
 * and moves the segment to the front of one process-wide LRU list. When
 * more than `max` segments are open, the least recently used ones are
 * closed (evicted) on the spot. A hot partition's active segment is used
 * at every append, so it stays at the front and stays open; cold
 * partitions cost no descriptor. Index files were already open only while
 * they are read or written (segment.c).
 *
 * THREADS AND LOCKS.
 *  - Only the loop thread opens and evicts (sl_seg_fd, sl_seg_fd_drop).
 *    It may use the fd it got without a lock until its next call that can
 *    evict (the next sl_seg_fd of another segment): the bound is at least
 *    SL_FDC_MIN, so the one or two segments an operation works on at a
 *    time are never the least recently used.
 *  - The flusher and the checkpoint thread read s->fd only under the
 *    partition's mutex (to dup it, or to pread in a journal round), so a
 *    change of s->fd (open, eviction) is made under that mutex too:
 *    s->pmu points at it once the segment is in its partition's array.
 *    When they find fd == -1 they open the file by its path for that
 *    round (partition_sync.c): syncing a segment never needs a cached fd.
 *  - Lock order: partition mutex, then the cache's mutex. The evictor
 *    releases the cache's mutex before it takes the victim's partition
 *    mutex, and nothing evicts while holding a partition mutex.
 *
 * DURABILITY. Closing a descriptor loses nothing: the page cache holds the
 * data, and the next fdatasync on any descriptor of the file writes it.
 * A writeback error that happens while no descriptor is open is still
 * reported to the next fdatasync through a newly opened one (Linux >= 4.16
 * reports an error nobody has seen yet to a new opener, errseq "seen"
 * flag), and a failed fdatasync marks the partition failed as before.
 */
#include "storage/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <unistd.h>

#include "protocol/log.h"
#include "storage/fsutil.h"
#include "storage/partition.h"

static struct {
    pthread_mutex_t mu;
    sl_seg *head, *tail; /* most recently used first */
    size_t n;            /* segments with an open fd in the list */
    size_t max;          /* 0 = not set yet: derived at first use */
    uint64_t opens, evictions;
} fdc = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, 0, 0, 0};

static size_t default_max(void)
{
    struct rlimit rl;
    size_t m = SL_FDC_DEFAULT;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        /* half the descriptors for segments, the rest for connections,
         * dups handed to sendfile, SQLite, the journal */
        m = (size_t)rl.rlim_cur / 2;
    }
    return m < SL_FDC_MIN ? SL_FDC_MIN : m;
}

void sl_part_set_max_open_files(size_t max)
{
    pthread_mutex_lock(&fdc.mu);
    fdc.max = max == 0 ? default_max() : max < SL_FDC_MIN ? SL_FDC_MIN : max;
    pthread_mutex_unlock(&fdc.mu);
}

void sl_part_open_files(size_t *open, size_t *max, uint64_t *opens,
                        uint64_t *evictions)
{
    pthread_mutex_lock(&fdc.mu);
    if (fdc.max == 0)
        fdc.max = default_max();
    if (open)
        *open = fdc.n;
    if (max)
        *max = fdc.max;
    if (opens)
        *opens = fdc.opens;
    if (evictions)
        *evictions = fdc.evictions;
    pthread_mutex_unlock(&fdc.mu);
}

/* fdc.mu held */
static void unlink_lru(sl_seg *s)
{
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        fdc.head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        fdc.tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
    s->in_lru = 0;
    fdc.n--;
}

/* fdc.mu held */
static void push_front(sl_seg *s)
{
    s->lru_prev = NULL;
    s->lru_next = fdc.head;
    if (fdc.head)
        fdc.head->lru_prev = s;
    fdc.head = s;
    if (!fdc.tail)
        fdc.tail = s;
    s->in_lru = 1;
    fdc.n++;
}

/* Move s to the front (insert it if it is not in the list). */
static void touch(sl_seg *s)
{
    pthread_mutex_lock(&fdc.mu);
    if (s->in_lru) {
        if (fdc.head != s) {
            unlink_lru(s);
            push_front(s);
        }
    } else {
        push_front(s);
    }
    pthread_mutex_unlock(&fdc.mu);
}

/* Set s->fd where the other threads look at it (under its partition's
 * mutex once it is shared). */
static void publish_fd(sl_seg *s, int fd)
{
    if (s->pmu)
        pthread_mutex_lock(s->pmu);
    s->fd = fd;
    if (s->pmu)
        pthread_mutex_unlock(s->pmu);
}

/* Close least recently used segments until at most max are open; never
 * `keep`. @thread loop, no partition mutex held */
static void evict(const sl_seg *keep)
{
    pthread_mutex_lock(&fdc.mu);
    if (fdc.max == 0)
        fdc.max = default_max();
    while (fdc.n > fdc.max && fdc.tail && fdc.tail != keep) {
        sl_seg *v = fdc.tail;
        unlink_lru(v);
        fdc.evictions++;
        pthread_mutex_unlock(&fdc.mu);
        /* Only the loop changes v->fd, so v->fd is still the open one. */
        int fd = v->fd;
        publish_fd(v, -1);
        if (fd >= 0)
            close(fd);
        pthread_mutex_lock(&fdc.mu);
    }
    pthread_mutex_unlock(&fdc.mu);
}

void sl_seg__fd_opened(sl_seg *s)
{
    pthread_mutex_lock(&fdc.mu);
    fdc.opens++;
    pthread_mutex_unlock(&fdc.mu);
    touch(s);
    evict(s);
}

int sl_seg_fd(sl_seg *s)
{
    char path[PATH_MAX];
    int fd;
    if (s->fd >= 0) {
        if (fdc.head != s) /* a racy peek: the common case skips the lock */
            touch(s);
        return s->fd;
    }
    sl_seg_path(s->dir, s->base, ".log", path, sizeof(path));
    fd = sl_fs->open(path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        sl_log(SL_ERROR, "storage", "cannot open %s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    publish_fd(s, fd);
    sl_seg__fd_opened(s);
    return fd;
}

void sl_seg__fd_replace(sl_seg *s, int fd)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = fd;
    pthread_mutex_lock(&fdc.mu);
    if (fd >= 0 && !s->in_lru)
        push_front(s);
    else if (fd < 0 && s->in_lru)
        unlink_lru(s);
    pthread_mutex_unlock(&fdc.mu);
}

void sl_seg__fd_forget(sl_seg *s)
{
    pthread_mutex_lock(&fdc.mu);
    if (s->in_lru)
        unlink_lru(s);
    pthread_mutex_unlock(&fdc.mu);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}
