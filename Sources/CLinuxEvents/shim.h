#ifndef SWITCHYARD_CLINUXEVENTS_SHIM_H
#define SWITCHYARD_CLINUXEVENTS_SHIM_H
// Linux's epoll and eventfd, which Glibc's Swift module does not export, for the proxy's own event loops.
#include <sys/epoll.h>
#include <sys/eventfd.h>

struct sockaddr;
// Declared by <sys/socket.h> only under _GNU_SOURCE, which would clash with Glibc's Swift module.
extern int accept4(int fd, struct sockaddr *address, unsigned int *length, int flags);

/// accept4(2) without the peer's address, as a non-blocking (04000, SOCK_NONBLOCK) close-on-exec
/// (02000000, SOCK_CLOEXEC) socket: Swift cannot pass NULL for glibc's transparent-union address argument.
static inline int switchyard_accept(int fd) { return accept4(fd, 0, 0, 04000 | 02000000); }
#endif
