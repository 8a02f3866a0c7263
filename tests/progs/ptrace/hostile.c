/* Arguments that point where they should not (RELIABILITY #13): an unmapped pointer, a path that runs
 * into an unmapped page without a NUL, one that ends with its NUL on the last byte of a page, and a
 * 4096-byte path. Every openat fails; the lines are compared with strace's. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

int main(void)
{
	long page = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(p + page, page);
	syscall(SYS_openat, AT_FDCWD, (char *)8, O_RDONLY);
	memset(p, 'a', page);
	syscall(SYS_openat, AT_FDCWD, p + page - 10, O_RDONLY);
	p[page - 1] = 0;
	syscall(SYS_openat, AT_FDCWD, p + page - 10, O_RDONLY);
	static char longpath[4097];
	memset(longpath, 'b', 4095);
	syscall(SYS_openat, AT_FDCWD, longpath, O_RDONLY);
	return 0;
}
