/*
 * srt-gateway: the SRT listener of the live ingest (docs/live.md, "SRT").
 *
 * ffmpeg's libsrt listener takes one caller per process and cannot route callers by stream id, and
 * the npm registry has no maintained libsrt binding, so the API runs this small program on
 * Debian's libsrt and does everything else itself (src/live/srt-ingest.ts): it checks each
 * caller's stream key, remuxes the MPEG-TS it sends and bounds it like an RTMP publisher.
 *
 * This program decides nothing about a caller but how many may be connected at once (in all, and
 * from one source: an IPv4 address, an IPv6 /64) and whether it knows its stream's passphrase. It parses no media: it moves bytes. A caller is accepted at
 * the SRT level, announced to the parent, and not read from until the parent says so (its key is
 * good); until then SRT's own flow control holds what it sends.
 *
 * Every caller's media is encrypted (AES): at the handshake this program reads the stream key from
 * the caller's stream id (the key itself, or SRT's access-control form `#!::r=KEY,m=publish`) and
 * sets the passphrase the key's stream has, HMAC-SHA256(passphrase key, stream key) in base64url,
 * its first 32 characters (src/live/stream-keys.ts makes the same for the API to show). A caller
 * without it, or with another, is refused by libsrt in the handshake, before anything is announced.
 * The passphrase key is the first line of stdin ("K <64 hex digits>"), read before listening: not
 * on the command line or in the environment, which other programs can read.
 *
 * To the parent, on stdout, frames: type (1 byte), connection id (u32, big endian), length (u32,
 * big endian), payload.
 *   'L'  listening; payload: the bound UDP port, as decimal text (connection id 0)
 *   'O'  a caller connected; payload: its address, '\n', the stream key from its stream id
 *   'D'  media from an accepted caller (MPEG-TS as sent, at most 64 KiB per frame)
 *   'C'  the caller is gone (it closed, or its connection broke)
 * From the parent, on stdin, lines (after the first, "K <hex>"):
 *   "A <id>"  start reading the caller's media
 *   "X <id>"  disconnect the caller (nothing more is said about it)
 * stdin closed: every caller is disconnected and the program exits.
 *
 * Usage: srt-gateway --host ADDRESS --port PORT [--max-connections N] [--max-connections-per-source N]
 *                    [--latency-ms MS]
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <srt/access_control.h>
#include <srt/srt.h>

#define MAX_STREAM_ID 512
/* Longer than any stream key (src/live/stream-keys.ts); the parent checks the key's form. */
#define MAX_KEY 128
#define PASSPHRASE_KEY_BYTES 32
#define PASSPHRASE_LENGTH 32
#define FRAME_PAYLOAD (64 * 1024)
#define SRT_PAYLOAD 1500
#define COMMAND_LINE 64

/* Where a caller comes from: an IPv4 address as its IPv4-mapped IPv6 form, an IPv6 one's first 64 bits. */
struct source {
  unsigned char bytes[16];
};

struct caller {
  SRTSOCKET socket;
  uint32_t id;
  int reading;
  struct source source;
};

static struct caller *callers;
static int max_callers = 200;
static int max_callers_per_source = 8;
/* Guards callers[].id and .source between the main thread and the listen callback (SRT's receiving thread). */
static pthread_mutex_t callers_lock = PTHREAD_MUTEX_INITIALIZER;
/* Callers held, read by the listen callback (SRT's receiving thread) to refuse more at handshake. */
static volatile int held;
static uint32_t next_id = 1;
static int epoll_id;
static unsigned char passphrase_key[PASSPHRASE_KEY_BYTES];

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
  pthread_mutex_lock(&callers_lock);
  c->id = 0;
  pthread_mutex_unlock(&callers_lock);
  c->reading = 0;
  __atomic_sub_fetch(&held, 1, __ATOMIC_SEQ_CST);
}

/*
 * The stream key in a stream id, copied to key (NUL-terminated); 0 when there is none: the id
 * itself, or in the access-control form `#!::name=value,...` the value of r, where an m other than
 * publish refuses the caller (viewers watch HLS). Reads at most MAX_STREAM_ID bytes; no regex.
 */
static int stream_key(const char *stream_id, char key[MAX_KEY + 1]) {
  size_t id_length = strnlen(stream_id, MAX_STREAM_ID + 1);
  if (id_length == 0 || id_length > MAX_STREAM_ID) return 0;
  if (strncmp(stream_id, "#!::", 4) != 0) {
    if (id_length > MAX_KEY) return 0;
    memcpy(key, stream_id, id_length + 1);
    return 1;
  }
  int found = 0;
  const char *pair = stream_id + 4;
  const char *end = stream_id + id_length;
  while (pair < end) {
    const char *comma = memchr(pair, ',', (size_t)(end - pair));
    const char *pair_end = comma != NULL ? comma : end;
    const char *eq = memchr(pair, '=', (size_t)(pair_end - pair));
    if (eq == NULL) return 0;
    size_t name_length = (size_t)(eq - pair);
    const char *value = eq + 1;
    size_t value_length = (size_t)(pair_end - value);
    if (name_length == 1 && pair[0] == 'r') {
      if (value_length == 0 || value_length > MAX_KEY) return 0;
      memcpy(key, value, value_length);
      key[value_length] = '\0';
      found = 1;
    } else if (name_length == 1 && pair[0] == 'm' && !(value_length == 7 && memcmp(value, "publish", 7) == 0)) {
      return 0;
    }
    pair = pair_end + 1;
  }
  return found;
}

static int source_of(const struct sockaddr *address, struct source *source) {
  memset(source->bytes, 0, sizeof source->bytes);
  if (address == NULL) return 0;
  if (address->sa_family == AF_INET) {
    source->bytes[10] = 0xff;
    source->bytes[11] = 0xff;
    memcpy(source->bytes + 12, &((const struct sockaddr_in *)address)->sin_addr, 4);
    return 1;
  }
  if (address->sa_family != AF_INET6) return 0;
  const unsigned char *v6 = ((const struct sockaddr_in6 *)address)->sin6_addr.s6_addr;
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  memcpy(source->bytes, v6, memcmp(v6, mapped, sizeof mapped) == 0 ? 16 : 8);
  return 1;
}

/* Callers held from a source; under callers_lock. */
static int callers_from(const struct source *source) {
  int count = 0;
  for (int i = 0; i < max_callers; i++)
    if (callers[i].id != 0 && memcmp(callers[i].source.bytes, source->bytes, sizeof source->bytes) == 0) count++;
  return count;
}

static int source_full(const struct source *source) {
  pthread_mutex_lock(&callers_lock);
  int full = callers_from(source) >= max_callers_per_source;
  pthread_mutex_unlock(&callers_lock);
  return full;
}

/* The passphrase of the stream a key belongs to: base64url(HMAC-SHA256(passphrase key, key)), cut. */
static int stream_passphrase(const char *key, char passphrase[PASSPHRASE_LENGTH + 1]) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char digest[32];
  if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, passphrase_key, sizeof passphrase_key, key, strlen(key), digest) != 0)
    return 0;
  /* 32 characters of base64 are 24 bytes: four characters from each three bytes. */
  for (int i = 0, o = 0; o < PASSPHRASE_LENGTH; i += 3, o += 4) {
    uint32_t bits = (uint32_t)digest[i] << 16 | (uint32_t)digest[i + 1] << 8 | digest[i + 2];
    passphrase[o] = alphabet[bits >> 18 & 63];
    passphrase[o + 1] = alphabet[bits >> 12 & 63];
    passphrase[o + 2] = alphabet[bits >> 6 & 63];
    passphrase[o + 3] = alphabet[bits & 63];
  }
  passphrase[PASSPHRASE_LENGTH] = '\0';
  return 1;
}

/*
 * Called by libsrt for each handshake, before the caller is accepted: refuses a stream id that
 * names no key and callers over the limit, and sets the passphrase the caller must have.
 */
static int on_handshake(void *opaque, SRTSOCKET ns, int hs_version, const struct sockaddr *peer, const char *stream_id) {
  (void)opaque;
  (void)hs_version;
  char key[MAX_KEY + 1];
  char passphrase[PASSPHRASE_LENGTH + 1];
  if (stream_id == NULL || !stream_key(stream_id, key) || !stream_passphrase(key, passphrase)) {
    srt_setrejectreason(ns, SRT_REJX_BAD_REQUEST);
    return -1;
  }
  if (srt_setsockflag(ns, SRTO_PASSPHRASE, passphrase, PASSPHRASE_LENGTH) != 0) {
    srt_setrejectreason(ns, SRT_REJX_ISE);
    return -1;
  }
  struct source source;
  if (__atomic_load_n(&held, __ATOMIC_SEQ_CST) >= max_callers || !source_of(peer, &source) || source_full(&source)) {
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
  struct source source;
  if (slot == NULL || !source_of((struct sockaddr *)&address, &source) || source_full(&source)) {
    /* More came through the handshake at once than the callback could count: refused here. */
    srt_close(socket);
    return;
  }
  char stream_id[MAX_STREAM_ID + 1] = {0};
  int stream_id_length = MAX_STREAM_ID;
  char key[MAX_KEY + 1];
  /* The handshake read the same stream id; a socket that lost it is closed. */
  if (srt_getsockflag(socket, SRTO_STREAMID, stream_id, &stream_id_length) != 0 || stream_id_length < 0 ||
      stream_id_length > MAX_STREAM_ID || !stream_key(stream_id, key)) {
    srt_close(socket);
    return;
  }
  char host[NI_MAXHOST] = "?";
  char port[NI_MAXSERV] = "0";
  getnameinfo((struct sockaddr *)&address, (socklen_t)address_length, host, sizeof host, port, sizeof port,
              NI_NUMERICHOST | NI_NUMERICSERV);
  char payload[NI_MAXHOST + NI_MAXSERV + 2 + MAX_KEY];
  int length = snprintf(payload, sizeof payload, "%s:%s\n%s", host, port, key);

  slot->socket = socket;
  pthread_mutex_lock(&callers_lock);
  slot->source = source;
  slot->id = next_id++;
  pthread_mutex_unlock(&callers_lock);
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

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Reads stdin's first line, "K <64 hex digits>", byte by byte (nothing after it is consumed). */
static int read_passphrase_key(void) {
  char line[3 + 2 * PASSPHRASE_KEY_BYTES];
  size_t used = 0;
  for (;;) {
    char c;
    ssize_t n = read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    if (c == '\n') break;
    if (used == sizeof line - 1) return 0;
    line[used++] = c;
  }
  line[used] = '\0';
  if (used != 2 + 2 * PASSPHRASE_KEY_BYTES || line[0] != 'K' || line[1] != ' ') return 0;
  for (int i = 0; i < PASSPHRASE_KEY_BYTES; i++) {
    int high = hex_digit(line[2 + 2 * i]);
    int low = hex_digit(line[3 + 2 * i]);
    if (high < 0 || low < 0) return 0;
    passphrase_key[i] = (unsigned char)(high << 4 | low);
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
    else if (strcmp(argv[i], "--max-connections-per-source") == 0) max_callers_per_source = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--latency-ms") == 0) latency_ms = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "srt-gateway: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (port < 0 || port > 65535 || max_callers < 1 || max_callers > 100000 || max_callers_per_source < 1 ||
      max_callers_per_source > 100000 || latency_ms < 20 || latency_ms > 10000) {
    fprintf(stderr, "srt-gateway: an option is out of range\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (!read_passphrase_key()) {
    fprintf(stderr, "srt-gateway: stdin's first line must be \"K\" and the passphrase key (64 hex digits)\n");
    return 2;
  }
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
