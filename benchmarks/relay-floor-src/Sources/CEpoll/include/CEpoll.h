#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

/// accept4(2) with no peer address, as a non-blocking socket (Swift cannot pass NULL for its union argument).
static inline int epoll_relay_accept(int fd) { return accept4(fd, 0, 0, SOCK_NONBLOCK); }
