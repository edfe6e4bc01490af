/* bench/run: the least a CGI program can do for `[]` (read the body, print the answer).
 * Served through the same shipped Apache site as salt-fcgi's CGI row, it is the floor of
 * any CGI program under that Apache. */
#include <stdlib.h>
#include <unistd.h>
int main(void) {
    char buf[4096];
    const char *cl = getenv("CONTENT_LENGTH");
    long left = cl ? atol(cl) : 0;
    while (left > 0) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n <= 0) break;
        left -= n;
    }
    static const char out[] = "Status: 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: 13\r\n\r\n{\"return\":[]}";
    return write(1, out, sizeof out - 1) == (ssize_t)(sizeof out - 1) ? 0 : 1;
}
