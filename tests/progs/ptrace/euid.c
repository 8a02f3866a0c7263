/* Exits 0 when it runs with the owner's privileges (set-uid applied), 1 when not (RELIABILITY #25). */
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct stat st;
	(void)argc;
	if (stat(argv[0], &st))
		return 2;
	return geteuid() == st.st_uid ? 0 : 1;
}
