/* Exercises multiplexing, message and struct decoders (msghdr with SCM_RIGHTS/SCM_CREDENTIALS, poll,
 * ppoll, epoll, select, pselect6, statx, sendfile, prctl, futex); the differential test runs it under
 * strace and under tests/decode_ptrace_support.py and compares the lines. Every result here is
 * deterministic: descriptors are ready or not by construction, timeouts are zero or tiny. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    int sv[2];
    char buf[64];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int on = 1;
    setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);

    /* sendmsg with a descriptor and credentials, recvmsg of both */
    int pass = open("/dev/null", O_RDONLY);
    struct iovec iov[2] = {{"hello ", 6}, {"world", 5}};
    union {
        char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass, sizeof pass);
    c = CMSG_NXTHDR(&msg, c);
    struct ucred cred = {getpid(), getuid(), getgid()};
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_CREDENTIALS;
    c->cmsg_len = CMSG_LEN(sizeof cred);
    memcpy(CMSG_DATA(c), &cred, sizeof cred);
    sendmsg(sv[0], &msg, MSG_NOSIGNAL);

    char rbuf[8], rbuf2[16];
    struct iovec riov[2] = {{rbuf, sizeof rbuf}, {rbuf2, sizeof rbuf2}};
    union {
        char buf[256];
        struct cmsghdr align;
    } ru;
    struct msghdr rmsg = {.msg_iov = riov, .msg_iovlen = 2, .msg_control = ru.buf, .msg_controllen = sizeof ru.buf};
    recvmsg(sv[1], &rmsg, MSG_CMSG_CLOEXEC);
    recvmsg(sv[1], &rmsg, MSG_DONTWAIT);

    /* poll: one ready, one not */
    write(sv[0], "x", 1);
    struct pollfd pfd[2] = {{sv[1], POLLIN, 0}, {sv[0], POLLIN | POLLPRI, 0}};
    poll(pfd, 2, 0);
    struct timespec ts0 = {0, 0};
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGUSR1);
    ppoll(pfd, 2, &ts0, &ss);
    poll(pfd + 1, 1, 0);

    /* epoll */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 0x1234};
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
    struct epoll_event out[4];
    epoll_wait(ep, out, 4, 0);
    epoll_pwait(ep, out, 4, 0, &ss);
    epoll_ctl(ep, EPOLL_CTL_DEL, sv[1], NULL);
    epoll_wait(ep, out, 4, 0);

    /* select / pselect6 */
    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(sv[1], &r);
    FD_SET(sv[0], &r);
    FD_SET(sv[0], &w);
    struct timeval tv = {0, 0};
    select(sv[1] + 1, &r, &w, NULL, &tv);
    FD_ZERO(&r);
    FD_SET(sv[0], &r);
    select(sv[1] + 1, &r, NULL, NULL, &tv);
    FD_ZERO(&r);
    FD_SET(sv[1], &r);
    pselect(sv[1] + 1, &r, NULL, NULL, &ts0, &ss);
    read(sv[1], buf, sizeof buf);

    /* statx */
    struct statx stx;
    syscall(SYS_statx, AT_FDCWD, "/dev/null", AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MODE | STATX_SIZE, &stx);
    syscall(SYS_statx, AT_FDCWD, "/nonexistent", 0, STATX_ALL, &stx);

    /* sendfile */
    int in = open("/etc/hostname", O_RDONLY);
    off_t off = 1;
    sendfile(sv[0], in, &off, 3);
    sendfile(sv[0], in, NULL, 2);
    read(sv[1], buf, sizeof buf);

    /* prctl */
    prctl(PR_SET_NAME, "unitrace-io");
    char name[16];
    prctl(PR_GET_NAME, name);
    prctl(PR_SET_DUMPABLE, 1);
    prctl(PR_GET_DUMPABLE);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int sig;
    prctl(PR_GET_PDEATHSIG, &sig);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    prctl(PR_CAPBSET_READ, 0);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    prctl(PR_GET_CHILD_SUBREAPER, &sig);

    /* futex ops on a private word; all return at once */
    int word = 1;
    struct timespec tmo = {0, 1000};
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &tmo, NULL, 0);
    syscall(SYS_futex, &word, FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, 0, NULL, NULL, FUTEX_BITSET_MATCH_ANY);
    syscall(SYS_futex, &word, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, NULL, 0xff);
    syscall(SYS_futex, &word, FUTEX_REQUEUE_PRIVATE, 1, 2, &sig, 0);
    syscall(SYS_futex, &word, FUTEX_CMP_REQUEUE_PRIVATE, 1, 2, &sig, 1);
    syscall(SYS_futex, &word, FUTEX_WAKE_OP_PRIVATE, 1, 1, &sig, FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_GT, 0));
    return 0;
}
