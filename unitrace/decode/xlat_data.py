"""Flag and enum tables (x86_64 values from the uapi headers: asm-generic/fcntl.h, mman-common.h,
linux/sched.h, asm-generic/signal.h, linux/futex.h, linux/prctl.h, asm-generic/resource.h, ...).
Order is strace's printing order."""

from __future__ import annotations

# one address-family table (strace's addrfams: unknown as `0x2e /* AF_??? */`)
from unitrace.decode.netlink_tables import ADDRESS_FAMILIES as ADDRESS_FAMILIES
from unitrace.decode.xlat import enum, flags

OPEN_ACCMODE = enum([(0, "O_RDONLY"), (1, "O_WRONLY"), (2, "O_RDWR"), (3, "O_ACCMODE")], "O_???")
OPEN_FLAGS = flags([
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"), (0o4010000, "O_SYNC"), (0o10000, "O_DSYNC"), (0o20000, "O_ASYNC"),
    (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"), (0o20200000, "O_TMPFILE"), (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
])
O_CREAT, O_TMPFILE_BIT = 0o100, 0o20000000

AT_FDCWD = -100
AT_FLAGS = flags([
    (0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"), (0x400, "AT_SYMLINK_FOLLOW"),
    (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH"), (0x2000, "AT_STATX_FORCE_SYNC"),
    (0x4000, "AT_STATX_DONT_SYNC"), (0x8000, "AT_RECURSIVE"),
])
FACCESSAT_FLAGS = flags([(0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_EACCESS"), (0x1000, "AT_EMPTY_PATH")])
ACCESS_MODES = flags([(4, "R_OK"), (2, "W_OK"), (1, "X_OK")], zero="F_OK")

PROT = flags([(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"), (8, "PROT_SEM"),
              (0x01000000, "PROT_GROWSDOWN"), (0x02000000, "PROT_GROWSUP")], zero="PROT_NONE")
MAP_TYPE = enum([(0, "MAP_FILE"), (1, "MAP_SHARED"), (2, "MAP_PRIVATE"), (3, "MAP_SHARED_VALIDATE")], "MAP_???")
MAP_FLAGS = flags([
    (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"), (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"),
    (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"),
    (0x80000, "MAP_SYNC"), (0x100000, "MAP_FIXED_NOREPLACE"), (0x4000000, "MAP_UNINITIALIZED"),
])
MREMAP_FLAGS = flags([(1, "MREMAP_MAYMOVE"), (2, "MREMAP_FIXED"), (4, "MREMAP_DONTUNMAP")])
MADVISE = enum([(0, "MADV_NORMAL"), (1, "MADV_RANDOM"), (2, "MADV_SEQUENTIAL"), (3, "MADV_WILLNEED"),
                (4, "MADV_DONTNEED"), (8, "MADV_FREE"), (9, "MADV_REMOVE"), (10, "MADV_DONTFORK"),
                (11, "MADV_DOFORK"), (12, "MADV_MERGEABLE"), (13, "MADV_UNMERGEABLE"), (14, "MADV_HUGEPAGE"),
                (15, "MADV_NOHUGEPAGE"), (16, "MADV_DONTDUMP"), (17, "MADV_DODUMP"), (18, "MADV_WIPEONFORK"),
                (19, "MADV_KEEPONFORK"), (20, "MADV_COLD"), (21, "MADV_PAGEOUT"),
                (22, "MADV_POPULATE_READ"), (23, "MADV_POPULATE_WRITE"), (24, "MADV_DONTNEED_LOCKED"),
                (25, "MADV_COLLAPSE"), (100, "MADV_HWPOISON"), (101, "MADV_SOFT_OFFLINE")], "MADV_???")

CLONE_FLAGS = flags([
    (0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"), (0x800, "CLONE_SIGHAND"),
    (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"), (0x4000, "CLONE_VFORK"), (0x8000, "CLONE_PARENT"),
    (0x10000, "CLONE_THREAD"), (0x20000, "CLONE_NEWNS"), (0x40000, "CLONE_SYSVSEM"),
    (0x80000, "CLONE_SETTLS"), (0x100000, "CLONE_PARENT_SETTID"), (0x200000, "CLONE_CHILD_CLEARTID"),
    (0x400000, "CLONE_DETACHED"), (0x800000, "CLONE_UNTRACED"), (0x1000000, "CLONE_CHILD_SETTID"),
    (0x2000000, "CLONE_NEWCGROUP"), (0x4000000, "CLONE_NEWUTS"), (0x8000000, "CLONE_NEWIPC"),
    (0x10000000, "CLONE_NEWUSER"), (0x20000000, "CLONE_NEWPID"), (0x40000000, "CLONE_NEWNET"),
    (0x80000000, "CLONE_IO"),
])

SA_FLAGS = flags([(1, "SA_NOCLDSTOP"), (2, "SA_NOCLDWAIT"), (4, "SA_SIGINFO"), (0x04000000, "SA_RESTORER"),
                  (0x08000000, "SA_ONSTACK"), (0x10000000, "SA_RESTART"), (0x40000000, "SA_NODEFER"),
                  (0x80000000, "SA_RESETHAND")])
SIGPROCMASK_HOW = enum([(0, "SIG_BLOCK"), (1, "SIG_UNBLOCK"), (2, "SIG_SETMASK")], "SIG_???")

FCNTL_CMDS = enum([
    (0, "F_DUPFD"), (1, "F_GETFD"), (2, "F_SETFD"), (3, "F_GETFL"), (4, "F_SETFL"), (5, "F_GETLK"),
    (6, "F_SETLK"), (7, "F_SETLKW"), (8, "F_SETOWN"), (9, "F_GETOWN"), (10, "F_SETSIG"), (11, "F_GETSIG"),
    (15, "F_SETOWN_EX"), (16, "F_GETOWN_EX"), (36, "F_OFD_GETLK"), (37, "F_OFD_SETLK"), (38, "F_OFD_SETLKW"),
    (1024, "F_SETLEASE"), (1025, "F_GETLEASE"), (1026, "F_NOTIFY"), (1030, "F_DUPFD_CLOEXEC"),
    (1031, "F_SETPIPE_SZ"), (1032, "F_GETPIPE_SZ"), (1033, "F_ADD_SEALS"), (1034, "F_GET_SEALS"),
    (1035, "F_GET_RW_HINT"), (1036, "F_SET_RW_HINT"), (1037, "F_GET_FILE_RW_HINT"),
    (1038, "F_SET_FILE_RW_HINT"),
], "F_???")
FD_FLAGS = flags([(1, "FD_CLOEXEC")])

FUTEX_OPS = enum([(0, "FUTEX_WAIT"), (1, "FUTEX_WAKE"), (2, "FUTEX_FD"), (3, "FUTEX_REQUEUE"),
                  (4, "FUTEX_CMP_REQUEUE"), (5, "FUTEX_WAKE_OP"), (6, "FUTEX_LOCK_PI"), (7, "FUTEX_UNLOCK_PI"),
                  (8, "FUTEX_TRYLOCK_PI"), (9, "FUTEX_WAIT_BITSET"), (10, "FUTEX_WAKE_BITSET"),
                  (11, "FUTEX_WAIT_REQUEUE_PI"), (12, "FUTEX_CMP_REQUEUE_PI"), (13, "FUTEX_LOCK_PI2")],
                 "FUTEX_???")
FUTEX_PRIVATE, FUTEX_CLOCK_REALTIME = 128, 256

ARCH_PRCTL = enum([(0x1001, "ARCH_SET_GS"), (0x1002, "ARCH_SET_FS"), (0x1003, "ARCH_GET_FS"),
                   (0x1004, "ARCH_GET_GS"), (0x1011, "ARCH_GET_CPUID"), (0x1012, "ARCH_SET_CPUID"),
                   (0x1021, "ARCH_GET_XCOMP_SUPP"), (0x1022, "ARCH_GET_XCOMP_PERM"),
                   (0x1023, "ARCH_REQ_XCOMP_PERM"), (0x2001, "ARCH_MAP_VDSO_X32"),
                   (0x2002, "ARCH_MAP_VDSO_32"), (0x2003, "ARCH_MAP_VDSO_64")], "ARCH_???")

RLIMITS = enum([(0, "RLIMIT_CPU"), (1, "RLIMIT_FSIZE"), (2, "RLIMIT_DATA"), (3, "RLIMIT_STACK"),
                (4, "RLIMIT_CORE"), (5, "RLIMIT_RSS"), (6, "RLIMIT_NPROC"), (7, "RLIMIT_NOFILE"),
                (8, "RLIMIT_MEMLOCK"), (9, "RLIMIT_AS"), (10, "RLIMIT_LOCKS"), (11, "RLIMIT_SIGPENDING"),
                (12, "RLIMIT_MSGQUEUE"), (13, "RLIMIT_NICE"), (14, "RLIMIT_RTPRIO"), (15, "RLIMIT_RTTIME")],
               "RLIMIT_???")

CLOCKS = enum([(0, "CLOCK_REALTIME"), (1, "CLOCK_MONOTONIC"), (2, "CLOCK_PROCESS_CPUTIME_ID"),
               (3, "CLOCK_THREAD_CPUTIME_ID"), (4, "CLOCK_MONOTONIC_RAW"), (5, "CLOCK_REALTIME_COARSE"),
               (6, "CLOCK_MONOTONIC_COARSE"), (7, "CLOCK_BOOTTIME"), (8, "CLOCK_REALTIME_ALARM"),
               (9, "CLOCK_BOOTTIME_ALARM"), (11, "CLOCK_TAI")], "CLOCK_???")
TIMER_FLAGS = flags([(1, "TIMER_ABSTIME")])

POLL_EVENTS = flags([(1, "POLLIN"), (2, "POLLPRI"), (4, "POLLOUT"), (8, "POLLERR"), (0x10, "POLLHUP"),
                     (0x20, "POLLNVAL"), (0x40, "POLLRDNORM"), (0x80, "POLLRDBAND"), (0x100, "POLLWRNORM"),
                     (0x200, "POLLWRBAND"), (0x400, "POLLMSG"), (0x2000, "POLLRDHUP")])
EPOLL_EVENTS = flags([(1, "EPOLLIN"), (2, "EPOLLPRI"), (4, "EPOLLOUT"), (8, "EPOLLERR"), (0x10, "EPOLLHUP"),
                      (0x20, "EPOLLNVAL"), (0x40, "EPOLLRDNORM"), (0x80, "EPOLLRDBAND"),
                      (0x100, "EPOLLWRNORM"), (0x200, "EPOLLWRBAND"), (0x400, "EPOLLMSG"),
                      (0x2000, "EPOLLRDHUP"), (1 << 28, "EPOLLEXCLUSIVE"), (1 << 29, "EPOLLWAKEUP"),
                      (1 << 30, "EPOLLONESHOT"), (1 << 31, "EPOLLET")])
EPOLL_CTL = enum([(1, "EPOLL_CTL_ADD"), (2, "EPOLL_CTL_DEL"), (3, "EPOLL_CTL_MOD")], "EPOLL_CTL_???")
EPOLL_CREATE_FLAGS = flags([(0o2000000, "EPOLL_CLOEXEC")])
PIPE_FLAGS = flags([(0o4000, "O_NONBLOCK"), (0o40000, "O_DIRECT"), (0o2000000, "O_CLOEXEC")])

SOCK_TYPES = enum([(1, "SOCK_STREAM"), (2, "SOCK_DGRAM"), (3, "SOCK_RAW"), (4, "SOCK_RDM"),
                   (5, "SOCK_SEQPACKET"), (6, "SOCK_DCCP"), (10, "SOCK_PACKET")], "SOCK_???")
SOCK_FLAGS = flags([(0o2000000, "SOCK_CLOEXEC"), (0o4000, "SOCK_NONBLOCK")])
IPPROTO = enum([(0, "IPPROTO_IP"), (1, "IPPROTO_ICMP"), (6, "IPPROTO_TCP"), (17, "IPPROTO_UDP"),
                (41, "IPPROTO_IPV6"), (58, "IPPROTO_ICMPV6"), (132, "IPPROTO_SCTP"), (255, "IPPROTO_RAW")],
               "IPPROTO_???", hex_unknown=False)
NETLINK_PROTOS = enum([(0, "NETLINK_ROUTE"), (2, "NETLINK_USERSOCK"), (4, "NETLINK_SOCK_DIAG"),
                       (9, "NETLINK_AUDIT"), (15, "NETLINK_KOBJECT_UEVENT"), (16, "NETLINK_GENERIC")],
                      "NETLINK_???", hex_unknown=False)
MSG_FLAGS = flags([(1, "MSG_OOB"), (2, "MSG_PEEK"), (4, "MSG_DONTROUTE"), (8, "MSG_CTRUNC"), (0x10, "MSG_PROXY"),
                   (0x20, "MSG_TRUNC"), (0x40, "MSG_DONTWAIT"), (0x80, "MSG_EOR"), (0x100, "MSG_WAITALL"),
                   (0x200, "MSG_FIN"), (0x400, "MSG_SYN"), (0x800, "MSG_CONFIRM"), (0x1000, "MSG_RST"),
                   (0x2000, "MSG_ERRQUEUE"), (0x4000, "MSG_NOSIGNAL"), (0x8000, "MSG_MORE"),
                   (0x10000, "MSG_WAITFORONE"), (0x20000, "MSG_BATCH"), (0x4000000, "MSG_ZEROCOPY"),
                   (0x20000000, "MSG_FASTOPEN"), (0x40000000, "MSG_CMSG_CLOEXEC")])
SHUTDOWN_HOW = enum([(0, "SHUT_RD"), (1, "SHUT_WR"), (2, "SHUT_RDWR")], "SHUT_???")

WAIT_OPTIONS = flags([(1, "WNOHANG"), (2, "WUNTRACED"), (4, "WEXITED"), (8, "WCONTINUED"),
                      (0x1000000, "WNOWAIT"), (0x20000000, "__WNOTHREAD"), (0x40000000, "__WALL"),
                      (0x80000000, "__WCLONE")])
SEEK_WHENCE = enum([(0, "SEEK_SET"), (1, "SEEK_CUR"), (2, "SEEK_END"), (3, "SEEK_DATA"), (4, "SEEK_HOLE")],
                   "SEEK_???")
GRND_FLAGS = flags([(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")])
PR_OPTIONS = enum([(1, "PR_SET_PDEATHSIG"), (2, "PR_GET_PDEATHSIG"), (3, "PR_GET_DUMPABLE"),
                   (4, "PR_SET_DUMPABLE"), (15, "PR_SET_NAME"), (16, "PR_GET_NAME"), (22, "PR_SET_SECCOMP"),
                   (21, "PR_GET_SECCOMP"), (23, "PR_CAPBSET_READ"), (36, "PR_SET_CHILD_SUBREAPER"),
                   (37, "PR_GET_CHILD_SUBREAPER"), (38, "PR_SET_NO_NEW_PRIVS"), (39, "PR_GET_NO_NEW_PRIVS"),
                   (0x59616d61, "PR_SET_PTRACER"), (47, "PR_CAP_AMBIENT"), (8, "PR_SET_KEEPCAPS"),
                   (7, "PR_GET_KEEPCAPS"), (35, "PR_SET_MM"), (40, "PR_GET_TID_ADDRESS"),
                   (41, "PR_SET_THP_DISABLE"), (42, "PR_GET_THP_DISABLE")], "PR_???")
S_IFMT = enum([(0o140000, "S_IFSOCK"), (0o120000, "S_IFLNK"), (0o100000, "S_IFREG"), (0o60000, "S_IFBLK"),
               (0o40000, "S_IFDIR"), (0o20000, "S_IFCHR"), (0o10000, "S_IFIFO")], "S_IF???")
DIRENT_TYPES = enum([(0, "DT_UNKNOWN"), (1, "DT_FIFO"), (2, "DT_CHR"), (4, "DT_DIR"), (6, "DT_BLK"),
                     (8, "DT_REG"), (10, "DT_LNK"), (12, "DT_SOCK")], "DT_???")

# <asm-generic/ioctls.h>: the terminal and file requests programs issue most
IOCTL_CMDS = enum([(0x5401, "TCGETS"), (0x5402, "TCSETS"), (0x5403, "TCSETSW"), (0x5404, "TCSETSF"),
                   (0x540B, "TCFLSH"), (0x540F, "TIOCGPGRP"), (0x5410, "TIOCSPGRP"), (0x5413, "TIOCGWINSZ"),
                   (0x5414, "TIOCSWINSZ"), (0x541B, "FIONREAD"), (0x5421, "FIONBIO"), (0x5450, "FIONCLEX"),
                   (0x5451, "FIOCLEX"), (0x5452, "FIOASYNC")], "???")
