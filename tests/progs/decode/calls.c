/* Exercises decoders whose output strace prints deterministically; the differential test runs it
 * under strace and under tests/decode_ptrace_support.py and compares the lines. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void handler(int s) { (void)s; }

int main(void) {
    char buf[200];
    int p[2];
    static const char bin[] = "a\0001\08\t\n\v\f\r\"\\\x7f\xc3\xa9 ok\x01\x1f";
    write(-1, bin, sizeof bin);
    write(-1, "0123456789012345678901234567890123456789", 40);
    int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    read(fd, buf, 5);
    lseek(fd, 0, SEEK_SET);
    pread(fd, buf, 3, 1);
    struct stat st;
    fstat(fd, &st);
    fcntl(fd, F_GETFD);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    close(fd);
    openat(AT_FDCWD, "/nonexistent/x", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0640);
    access("/etc/passwd", R_OK | W_OK);
    mkdir("/nonexistent/dir", 0755);
    pipe2(p, O_CLOEXEC | O_NONBLOCK);
    struct iovec iov[2] = {{"hello ", 6}, {"world\n", 6}};
    writev(p[1], iov, 2);
    read(p[0], buf, sizeof buf);
    close(p[0]);
    close(p[1]);
    void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(m, 4096, PROT_READ);
    munmap(m, 8192);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    connect(s, (struct sockaddr *)&sin, sizeof sin);
    close(s);
    s = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, "/nonexistent/sock");
    connect(s, (struct sockaddr *)&sun, sizeof sun);
    close(s);
    struct timespec ts = {0, 1000};
    nanosleep(&ts, NULL);
    syscall(SYS_getcwd, buf, sizeof buf);
    readlink("/proc/self/cwd", buf, sizeof buf);
    unlinkat(AT_FDCWD, "/nonexistent/y", AT_REMOVEDIR);
    kill(getpid(), 0);
    return 0;
}
