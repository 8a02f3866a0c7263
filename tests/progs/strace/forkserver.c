/* A forking server on loopback: the parent listens, a child connects and sends "ping", the parent
 * accepts, forks a handler that answers "pong", and reaps both. Exercises socket decoding under -f. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	int srv = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr;
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons(0);
	if (bind(srv, (struct sockaddr *)&addr, sizeof(addr)) || listen(srv, 4))
		return 1;
	socklen_t len = sizeof(addr);
	getsockname(srv, (struct sockaddr *)&addr, &len);
	pid_t client = fork();
	if (client == 0) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(c, (struct sockaddr *)&addr, sizeof(addr)))
			_exit(2);
		write(c, "ping", 4);
		char buf[8];
		ssize_t n = read(c, buf, sizeof(buf));
		_exit(n == 4 && memcmp(buf, "pong", 4) == 0 ? 0 : 3);
	}
	int conn = accept(srv, NULL, NULL);
	pid_t handler = fork();
	if (handler == 0) {
		char buf[8];
		ssize_t n = read(conn, buf, sizeof(buf));
		if (n == 4)
			write(conn, "pong", 4);
		_exit(0);
	}
	close(conn);
	int st1, st2;
	waitpid(handler, &st1, 0);
	waitpid(client, &st2, 0);
	return WIFEXITED(st2) ? WEXITSTATUS(st2) : 4;
}
