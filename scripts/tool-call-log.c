/*
 * A stand-in for ffmpeg and ffprobe that writes down each start, for measuring what the tests run
 * (docs/testing.md, "A run, by program and by file"). Build it under both names in a directory of
 * its own and put that first on PATH:
 *
 *   mkdir -p /tmp/tool-log && gcc -O2 -o /tmp/tool-log/ffmpeg scripts/tool-call-log.c &&
 *     cp /tmp/tool-log/ffmpeg /tmp/tool-log/ffprobe
 *   PATH=/tmp/tool-log:$PATH npx vitest run
 *
 * Each start appends one line to $TOOL_CALL_LOG (default /tmp/tool-log/calls.txt): its process id,
 * the time in milliseconds, its parents' process ids (up to six, nearest first), then the tool's
 * name and its arguments, separated by the 0x1f byte. It then execs /usr/bin/<name> in the same
 * process with the same environment and arguments, so the process id matches process accounting's
 * (`dump-acct`) and no test sees a difference (a shell stand-in adds PWD and SHLVL, which some
 * tests check).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/time.h>
#include <unistd.h>

static int parent_of(int pid) {
  char file[64], buf[1024];
  snprintf(file, sizeof file, "/proc/%d/stat", pid);
  FILE *f = fopen(file, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *end = strrchr(buf, ')');
  int ppid = 0;
  char state;
  if (end) sscanf(end + 2, "%c %d", &state, &ppid);
  return ppid;
}

int main(int argc, char **argv) {
  const char *name = strrchr(argv[0], '/');
  name = name ? name + 1 : argv[0];
  char real[256];
  snprintf(real, sizeof real, "/usr/bin/%s", name);
  const char *log = getenv("TOOL_CALL_LOG");
  int fd = open(log ? log : "/tmp/tool-log/calls.txt", O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd >= 0) {
    static char line[200000];
    struct timeval now;
    gettimeofday(&now, 0);
    int n = snprintf(line, sizeof line, "%d\t%lld\t", getpid(), (long long)now.tv_sec * 1000 + now.tv_usec / 1000);
    int pid = getppid();
    for (int i = 0; i < 6 && pid > 1; i++, pid = parent_of(pid)) n += snprintf(line + n, sizeof line - n, "%d,", pid);
    n += snprintf(line + n, sizeof line - n, "\t%s", name);
    for (int i = 1; i < argc && n < (int)sizeof line - 2100; i++)
      n += snprintf(line + n, sizeof line - n, "\x1f%.2000s", argv[i]);
    line[n++] = '\n';
    flock(fd, LOCK_EX);
    if (write(fd, line, n) < 0) perror("tool-call-log");
    flock(fd, LOCK_UN);
    close(fd);
  }
  argv[0] = real;
  execv(real, argv);
  perror(real);
  return 127;
}
