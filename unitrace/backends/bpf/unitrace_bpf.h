/* Fixed C shared by every program unitrace generates for bcc. Generated code includes this file; it holds
 * no user text. */
#ifndef UNITRACE_BPF_H
#define UNITRACE_BPF_H

#include <uapi/linux/ptrace.h>
#include <linux/sched.h>

#define UT_COMM_LEN 16

/* Compare the first n bytes of a fixed-size kernel array (comm) with a literal; n includes the NUL for an
 * exact match and excludes it for a prefix match. Bounded loop: the verifier needs a constant trip count. */
static __always_inline int ut_str_eq(const char *a, const char *b, int n)
{
#pragma unroll
    for (int i = 0; i < UT_COMM_LEN; i++) {
        if (i >= n)
            return 1;
        if (a[i] != b[i])
            return 0;
    }
    return 1;
}

/* Histogram bucket of a value, as the user-space engine numbers them: 0 for negatives, 1 for zero,
 * k + 2 for [2^k, 2^(k+1)). */
static __always_inline s32 ut_log2_bucket(s64 v)
{
    if (v < 0)
        return 0;
    if (v == 0)
        return 1;
    u64 x = (u64)v;
    s32 k = 0;
#pragma unroll
    for (int s = 32; s > 0; s >>= 1) {
        if (x >> s) {
            x >>= s;
            k += s;
        }
    }
    return k + 2;
}

/* Signed division and remainder as C defines them (truncation toward zero, the remainder takes the
 * dividend's sign), and 0 for a zero divisor. BPF before ISA v4 has only unsigned division and LLVM refuses
 * `sdiv` ("Unsupport signed division"): divide the magnitudes, then set the sign. */
static __always_inline s64 ut_sdiv(s64 a, s64 b)
{
    if (b == 0)
        return 0;
    u64 ua = a < 0 ? -(u64)a : (u64)a;
    u64 ub = b < 0 ? -(u64)b : (u64)b;
    u64 q = ua / ub;
    return (a < 0) != (b < 0) ? (s64)(0 - q) : (s64)q;
}

static __always_inline s64 ut_smod(s64 a, s64 b)
{
    if (b == 0)
        return 0;
    u64 ua = a < 0 ? -(u64)a : (u64)a;
    u64 ub = b < 0 ? -(u64)b : (u64)b;
    u64 r = ua % ub;
    return a < 0 ? (s64)(0 - r) : (s64)r;
}

/* Linear histogram bucket: 0 below min, 1 + (v - min) / step inside, last above max (unsigned division:
 * both sides are positive there; step >= 1). */
static __always_inline s32 ut_linear_bucket(s64 v, s64 min, s64 max, s64 step)
{
    if (v < min)
        return 0;
    if (v >= max)
        return (s32)((u64)(max - min) / (u64)step) + 1;
    return (s32)((u64)(v - min) / (u64)step) + 1;
}

/* execve's argv and envp as copied at entry (record.py: EXECARGS): argc = -1 when the array was unreadable,
 * 8 when it has more than 8 entries; envc = -1 when unreadable or longer than 256 */
struct ut_execargs {
    u64 ptr[8];
    u64 envp;
    s32 argc;
    s32 envc;
    u32 unread;  /* bit i: string i could not be read (not mapped in yet, as in a fresh fork child) */
    u32 pad;
    char str[8][48];
};

static __always_inline void ut_read_execargs(struct ut_execargs *x, u64 argv, u64 envp)
{
    x->argc = -1;
    x->envc = -1;
    x->envp = envp;
    x->unread = 0;
    if (argv && bpf_probe_read_user(x->ptr, sizeof(x->ptr), (void *)argv) == 0) {
        x->argc = 8;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            if (!x->ptr[i]) {
                x->argc = i;
                break;
            }
            if (bpf_probe_read_user_str(x->str[i], sizeof(x->str[i]), (void *)x->ptr[i]) < 0)
                x->unread |= 1u << i;
        }
    }
    if (!envp)
        return;
    u64 chunk[8];
    for (int j = 0; j < 32; j++) {
        if (bpf_probe_read_user(chunk, sizeof(chunk), (void *)(envp + 64 * j)))
            return;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            if (!chunk[k]) {
                x->envc = j * 8 + k;
                return;
            }
        }
    }
}

/* Hide a value's range from clang, so that a mask it would drop as a no-op stays for the verifier. */
#define UT_OPAQUE(v) asm volatile("" : "+r"(v))

/* The record's header (record.py), every field set: the per-CPU scratch record still holds the previous
 * record's values. Lengths -1: no strings or buffers until the caller packs them. */
static __always_inline void ut_rec_init(struct ut_record *r, u32 kind, u32 probe, u32 tgid, u32 tid, u64 ts)
{
    r->ts = ts;
    r->dur = 0;
    __builtin_memset(r->args, 0, sizeof(r->args));
    r->ret = 0;
    r->ibuf_addr = 0;
    r->pid = tgid;
    r->tid = tid;
    r->probe = probe;
    r->cpu = bpf_get_smp_processor_id();
    r->nr = -1;
    r->kind = kind;
    r->kstack = -1;
    r->ustack = -1;
#pragma unroll
    for (int i = 0; i < UT_N_STRS; i++) {
        r->str_addr[i] = 0;
        r->str_len[i] = -1;
    }
    r->buf_len = -1;
    r->ibuf_len = -1;
}

/* Append a captured part (*len bytes, at most max; nothing when *len <= 0) to the record's data at pos, set
 * *len to what was appended, and return the next position. Every part but the last starts below
 * UT_POS_MASK + 1 and is at most UT_DATA_LEN - UT_POS_MASK - 1 long (record.py), which is what the mask and
 * the clamp tell the verifier. The source is the in-flight copy (map memory): a failed read leaves zeros. */
/* A user string read straight into the record's data at pos (a function argument a uprobe sees): its
 * length, NUL included, in *len, or -1 when it could not be read. */
static __always_inline u32 ut_put_user_str(char *data, u32 pos, u64 uaddr, s32 *len)
{
    *len = -1;
    if (!uaddr)
        return pos;
    UT_OPAQUE(pos);
    pos &= UT_POS_MASK;
    long n = bpf_probe_read_user_str(data + pos, UT_STR_LEN, (void *)uaddr);
    if (n <= 0)
        return pos;
    *len = n;
    return pos + (u32)n;
}

static __always_inline u32 ut_put(char *data, u32 pos, const void *src, s32 *len, u32 max)
{
    if (*len <= 0)
        return pos;
    u32 n = *len > max ? max : (u32)*len;
    *len = n;
    UT_OPAQUE(n);  /* else clang drops the masks it can prove idle, and the verifier loses the bounds */
    UT_OPAQUE(pos);
    n &= UT_LEN_MASK;
    pos &= UT_POS_MASK;
    bpf_probe_read_kernel(data + pos, n, src);
    return pos + n;
}

/* DWARF user stacks: append the user registers CFI needs (struct USNAP in record.py: rip, rsp, rbp, rbx,
 * r12-r15, then the bytes copied and the bytes asked) and up to `want` bytes of the user stack from rsp, the
 * last part of the record. The user registers are the task's saved ones (the ctx of a uprobe is the same
 * frame). A copy that runs past the top of the stack fails whole, so it is shrunk to end at a page boundary
 * below, a page more each try. */
#define UT_USNAP_TRIES (UT_USNAP_MAX / 4096 + 2)
static __always_inline u32 ut_put_ustack(struct ut_record *r, u32 pos, u32 want)
{
    struct pt_regs *u = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
    UT_OPAQUE(pos);
    pos &= UT_PARTS_MASK;
    char *h = r->data + pos;
    bpf_probe_read_kernel(h, 8, &u->ip);
    bpf_probe_read_kernel(h + 8, 8, &u->sp);
    bpf_probe_read_kernel(h + 16, 8, &u->bp);
    bpf_probe_read_kernel(h + 24, 8, &u->bx);
    bpf_probe_read_kernel(h + 32, 8, &u->r12);
    bpf_probe_read_kernel(h + 40, 8, &u->r13);
    bpf_probe_read_kernel(h + 48, 8, &u->r14);
    bpf_probe_read_kernel(h + 56, 8, &u->r15);
    u64 sp = 0;
    bpf_probe_read_kernel(&sp, sizeof(sp), &u->sp);
    /* u64, not u32: a u32 is compared as a zero-extended copy, and the verifier's bound stays on the copy */
    u64 n = want > UT_USNAP_MAX ? UT_USNAP_MAX : want, spos = pos + UT_USNAP_HDR;
    u32 got = 0;
#pragma unroll
    for (int i = 0; i < UT_USNAP_TRIES; i++) {
        if (!sp || !n)
            break;
        UT_OPAQUE(n);
        UT_OPAQUE(spos);
        if (n > UT_USNAP_MAX)
            n = UT_USNAP_MAX;
        if (spos > UT_PARTS_MASK + UT_USNAP_HDR)
            spos = UT_PARTS_MASK + UT_USNAP_HDR;
        if (bpf_probe_read_user(r->data + spos, n, (void *)sp) == 0) {
            got = n;
            break;
        }
        u64 end = (sp + n) & ~4095ULL;
        if (end == sp + n)
            end -= 4096;
        n = end > sp ? end - sp : 0;
    }
    bpf_probe_read_kernel(h + 64, 4, &got);
    bpf_probe_read_kernel(h + 68, 4, &want);
    return pos + UT_USNAP_HDR + got;
}

struct ut_key {
    u32 probe;
    u32 slot;   /* which aggregation of the probe */
    s64 k0;
    s64 k1;
    char comm[UT_COMM_LEN];
    s32 bucket;
    u32 pad;
};

struct ut_value {
    u64 count;
    s64 sum;
    s64 min;
    s64 max;
};

#endif
