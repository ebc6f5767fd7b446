/*
 * srt-gateway: the SRT listener of the live ingest (docs/live.md, "SRT").
 *
 * ffmpeg's libsrt listener takes one caller per process and cannot route callers by stream id, and
 * the npm registry has no maintained libsrt binding, so the API runs this small program on
 * Debian's libsrt and does everything else itself (src/live/srt-ingest.ts): it checks each
 * caller's stream key, remuxes the MPEG-TS it sends and bounds it like an RTMP publisher.
 *
 * This program decides nothing about a caller but how many may be connected at once. It parses no
 * media: it moves bytes. A caller is accepted at the SRT level, announced to the parent, and not
 * read from until the parent says so (its key is good); until then SRT's own flow control holds
 * what it sends.
 *
 * To the parent, on stdout, frames: type (1 byte), connection id (u32, big endian), length (u32,
 * big endian), payload.
 *   'L'  listening; payload: the bound UDP port, as decimal text (connection id 0)
 *   'O'  a caller connected; payload: its address, '\n', its stream id (at most 512 bytes)
 *   'D'  media from an accepted caller (MPEG-TS as sent, at most 64 KiB per frame)
 *   'C'  the caller is gone (it closed, or its connection broke)
 * From the parent, on stdin, lines:
 *   "A <id>"  start reading the caller's media
 *   "X <id>"  disconnect the caller (nothing more is said about it)
 * stdin closed: every caller is disconnected and the program exits.
 *
 * Usage: srt-gateway --host ADDRESS --port PORT [--max-connections N] [--latency-ms MS]
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <srt/access_control.h>
#include <srt/srt.h>

#define MAX_STREAM_ID 512
#define FRAME_PAYLOAD (64 * 1024)
#define SRT_PAYLOAD 1500
#define COMMAND_LINE 64

struct caller {
  SRTSOCKET socket;
  uint32_t id;
  int reading;
};

static struct caller *callers;
static int max_callers = 200;
/* Callers held, read by the listen callback (SRT's receiving thread) to refuse more at handshake. */
static volatile int held;
static uint32_t next_id = 1;
static int epoll_id;

static void fail(const char *what) {
  int system_error = 0;
  srt_getlasterror(&system_error);
  /* The system's reason where there is one ("Address already in use"), else libsrt's. */
  fprintf(stderr, "srt-gateway: %s: %s\n", what, system_error != 0 ? strerror(system_error) : srt_getlasterror_str());
  exit(1);
}

static void write_all(const void *data, size_t length) {
  const char *p = data;
  while (length > 0) {
    ssize_t n = write(STDOUT_FILENO, p, length);
    if (n < 0 && errno == EINTR) continue;
    /* The parent is gone: nothing to serve. */
    if (n <= 0) exit(0);
    p += n;
    length -= (size_t)n;
  }
}

static void frame(char type, uint32_t id, const void *payload, uint32_t length) {
  unsigned char header[9];
  header[0] = (unsigned char)type;
  header[1] = (unsigned char)(id >> 24);
  header[2] = (unsigned char)(id >> 16);
  header[3] = (unsigned char)(id >> 8);
  header[4] = (unsigned char)id;
  header[5] = (unsigned char)(length >> 24);
  header[6] = (unsigned char)(length >> 16);
  header[7] = (unsigned char)(length >> 8);
  header[8] = (unsigned char)length;
  write_all(header, sizeof header);
  if (length > 0) write_all(payload, length);
}

static struct caller *find(uint32_t id) {
  for (int i = 0; i < max_callers; i++)
    if (callers[i].id == id) return &callers[i];
  return NULL;
}

static struct caller *find_socket(SRTSOCKET socket) {
  for (int i = 0; i < max_callers; i++)
    if (callers[i].id != 0 && callers[i].socket == socket) return &callers[i];
  return NULL;
}

static void drop(struct caller *c, int announce) {
  srt_epoll_remove_usock(epoll_id, c->socket);
  srt_close(c->socket);
  if (announce) frame('C', c->id, NULL, 0);
  c->id = 0;
  c->reading = 0;
  __atomic_sub_fetch(&held, 1, __ATOMIC_SEQ_CST);
}

/* Called by libsrt for each handshake, before the caller is accepted: refuses callers over the limit. */
static int on_handshake(void *opaque, SRTSOCKET ns, int hs_version, const struct sockaddr *peer, const char *stream_id) {
  (void)opaque;
  (void)hs_version;
  (void)peer;
  if (stream_id == NULL || stream_id[0] == '\0') {
    srt_setrejectreason(ns, SRT_REJX_BAD_REQUEST);
    return -1;
  }
  if (__atomic_load_n(&held, __ATOMIC_SEQ_CST) >= max_callers) {
    srt_setrejectreason(ns, SRT_REJX_OVERLOAD);
    return -1;
  }
  return 0;
}

static void accept_caller(SRTSOCKET listener) {
  struct sockaddr_storage address;
  int address_length = sizeof address;
  SRTSOCKET socket = srt_accept(listener, (struct sockaddr *)&address, &address_length);
  if (socket == SRT_INVALID_SOCK) return;
  struct caller *slot = find(0);
  if (slot == NULL) {
    /* More came through the handshake at once than the callback could count: refused here. */
    srt_close(socket);
    return;
  }
  char stream_id[MAX_STREAM_ID + 1] = {0};
  int stream_id_length = MAX_STREAM_ID;
  if (srt_getsockflag(socket, SRTO_STREAMID, stream_id, &stream_id_length) != 0) stream_id_length = 0;
  if (stream_id_length < 0 || stream_id_length > MAX_STREAM_ID) stream_id_length = 0;
  char host[NI_MAXHOST] = "?";
  char port[NI_MAXSERV] = "0";
  getnameinfo((struct sockaddr *)&address, (socklen_t)address_length, host, sizeof host, port, sizeof port,
              NI_NUMERICHOST | NI_NUMERICSERV);
  char payload[NI_MAXHOST + NI_MAXSERV + 2 + MAX_STREAM_ID];
  int length = snprintf(payload, sizeof payload, "%s:%s\n", host, port);
  memcpy(payload + length, stream_id, (size_t)stream_id_length);
  length += stream_id_length;

  slot->socket = socket;
  slot->id = next_id++;
  if (next_id == 0) next_id = 1;
  slot->reading = 0;
  __atomic_add_fetch(&held, 1, __ATOMIC_SEQ_CST);
  /* Errors only until the parent accepts it: a broken connection is still noticed. */
  int events = SRT_EPOLL_ERR;
  srt_epoll_add_usock(epoll_id, socket, &events);
  frame('O', slot->id, payload, (uint32_t)length);
}

static void read_caller(struct caller *c) {
  static char buffer[FRAME_PAYLOAD];
  if (!c->reading) {
    SRT_SOCKSTATUS state = srt_getsockstate(c->socket);
    if (state == SRTS_BROKEN || state == SRTS_CLOSED || state == SRTS_NONEXIST) drop(c, 1);
    return;
  }
  /* At most one frame per wake-up: a caller that sends faster than it is read cannot starve the
   * others or the parent's commands (epoll reports it again: SRT's epoll is level-triggered). */
  size_t used = 0;
  while (FRAME_PAYLOAD - used >= SRT_PAYLOAD) {
    int n = srt_recvmsg(c->socket, buffer + used, SRT_PAYLOAD);
    if (n > 0) {
      used += (size_t)n;
      continue;
    }
    if (used > 0) frame('D', c->id, buffer, (uint32_t)used);
    if (n < 0 && srt_getlasterror(NULL) == SRT_EASYNCRCV) return;
    drop(c, 1);
    return;
  }
  frame('D', c->id, buffer, (uint32_t)used);
}

/* Reads the parent's commands; returns 0 when stdin is closed. */
static int read_commands(void) {
  static char line[COMMAND_LINE];
  static size_t used;
  char chunk[4096];
  ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
  if (n <= 0) return 0;
  for (ssize_t i = 0; i < n; i++) {
    if (chunk[i] != '\n') {
      if (used < COMMAND_LINE - 1) line[used++] = chunk[i];
      continue;
    }
    line[used] = '\0';
    used = 0;
    char command = line[0];
    unsigned long id = strtoul(line + 1, NULL, 10);
    struct caller *c = id == 0 ? NULL : find((uint32_t)id);
    if (c == NULL) continue;
    if (command == 'A' && !c->reading) {
      c->reading = 1;
      int events = SRT_EPOLL_IN | SRT_EPOLL_ERR;
      srt_epoll_update_usock(epoll_id, c->socket, &events);
      /* What came while the key was checked is waiting: read it now. */
      read_caller(c);
    } else if (command == 'X') {
      drop(c, 0);
    }
  }
  return 1;
}

int main(int argc, char **argv) {
  const char *host = "0.0.0.0";
  int port = 0;
  int latency_ms = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--host") == 0) host = argv[i + 1];
    else if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--max-connections") == 0) max_callers = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--latency-ms") == 0) latency_ms = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "srt-gateway: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (port < 0 || port > 65535 || max_callers < 1 || max_callers > 100000 || latency_ms < 20 || latency_ms > 10000) {
    fprintf(stderr, "srt-gateway: an option is out of range\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  callers = calloc((size_t)max_callers, sizeof *callers);
  if (callers == NULL) return 1;
  if (srt_startup() < 0) fail("startup");
  srt_setloglevel(3 /* LOG_ERR */);

  /* An IPv4 or IPv6 address, as written (no name is looked up). */
  char port_text[16];
  snprintf(port_text, sizeof port_text, "%d", port);
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_DGRAM};
  struct addrinfo *address;
  if (getaddrinfo(host, port_text, &hints, &address) != 0) {
    fprintf(stderr, "srt-gateway: %s is not an address\n", host);
    return 2;
  }

  SRTSOCKET listener = srt_create_socket();
  if (listener == SRT_INVALID_SOCK) fail("socket");
  int no = 0;
  /* Callers inherit these: non-blocking, live mode (the default), the receiver's latency. */
  srt_setsockflag(listener, SRTO_RCVSYN, &no, sizeof no);
  srt_setsockflag(listener, SRTO_RCVLATENCY, &latency_ms, sizeof latency_ms);
  if (srt_bind(listener, address->ai_addr, (int)address->ai_addrlen) != 0) {
    char what[NI_MAXHOST + 32];
    snprintf(what, sizeof what, "UDP port %d on %s", port, host);
    fail(what);
  }
  if (srt_listen_callback(listener, on_handshake, NULL) != 0) fail("listen callback");
  if (srt_listen(listener, 16) != 0) fail("listen");
  freeaddrinfo(address);

  struct sockaddr_storage bound;
  int bound_length = sizeof bound;
  if (srt_getsockname(listener, (struct sockaddr *)&bound, &bound_length) != 0) fail("getsockname");

  epoll_id = srt_epoll_create();
  if (epoll_id < 0) fail("epoll");
  int in_events = SRT_EPOLL_IN | SRT_EPOLL_ERR;
  srt_epoll_add_usock(epoll_id, listener, &in_events);
  int stdin_events = SRT_EPOLL_IN | SRT_EPOLL_ERR;
  if (srt_epoll_add_ssock(epoll_id, STDIN_FILENO, &stdin_events) != 0) fail("epoll stdin");

  char bound_port[NI_MAXSERV];
  if (getnameinfo((struct sockaddr *)&bound, (socklen_t)bound_length, NULL, 0, bound_port, sizeof bound_port,
                  NI_NUMERICSERV) != 0) {
    fprintf(stderr, "srt-gateway: the bound port cannot be read\n");
    return 1;
  }
  frame('L', 0, bound_port, (uint32_t)strlen(bound_port));

  SRTSOCKET *ready = calloc((size_t)max_callers + 1, sizeof *ready);
  SRTSOCKET *broken = calloc((size_t)max_callers + 1, sizeof *broken);
  SYSSOCKET system_ready[1];
  if (ready == NULL || broken == NULL) return 1;
  for (;;) {
    int ready_count = max_callers + 1;
    int broken_count = max_callers + 1;
    int system_count = 1;
    int n = srt_epoll_wait(epoll_id, ready, &ready_count, broken, &broken_count, 1000, system_ready, &system_count,
                           NULL, NULL);
    if (n < 0) {
      if (srt_getlasterror(NULL) == SRT_ETIMEOUT) continue;
      fail("epoll wait");
    }
    if (system_count > 0 && !read_commands()) break;
    for (int i = 0; i < ready_count; i++) {
      if (ready[i] == listener) {
        accept_caller(listener);
        continue;
      }
      struct caller *c = find_socket(ready[i]);
      if (c != NULL) read_caller(c);
    }
    /* Sockets in error are listed among the writable ones too (never asked for otherwise). */
    for (int i = 0; i < broken_count; i++) {
      struct caller *c = find_socket(broken[i]);
      if (c != NULL) read_caller(c);
    }
  }
  for (int i = 0; i < max_callers; i++)
    if (callers[i].id != 0) drop(&callers[i], 0);
  srt_close(listener);
  srt_cleanup();
  return 0;
}
