// bench/servers/http_min.h in C#: the minimal HTTP/1.1 every bench server speaks. A request's
// headers end at CRLFCRLF (no body); the answer is "Hello, World!", keep-alive unless the request
// says "Connection: close"; headers that reach MaxHeader bytes without ending get 431 and a close.
using System.Text;

static class HttpMin
{
    public const int MaxHeader = 8192;
    public static readonly byte[] Ok = Encoding.ASCII.GetBytes(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!");
    public static readonly byte[] OkClose = Encoding.ASCII.GetBytes(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!");
    public static readonly byte[] TooLarge = Encoding.ASCII.GetBytes(
        "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");

    // Length of the first complete request in buf[off, off + len), or 0 while it is incomplete.
    public static int RequestEnd(byte[] buf, int off, int len)
    {
        for (int i = 3; i < len; ++i)
            if (buf[off + i] == '\n' && buf[off + i - 1] == '\r' && buf[off + i - 2] == '\n' && buf[off + i - 3] == '\r')
                return i + 1;
        return 0;
    }

    // Does the request in buf[off, off + n) ask to close ("Connection: close", any case)?
    public static bool WantsClose(byte[] buf, int off, int n)
    {
        const string key = "\nconnection:";
        for (int i = 0; i + key.Length < n; ++i)
        {
            int j = 0;
            while (j < key.Length)
            {
                char c = (char)buf[off + i + j];
                if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
                if (c != key[j]) break;
                ++j;
            }
            if (j < key.Length) continue;
            int v = i + key.Length;
            while (v < n && buf[off + v] == ' ') ++v;
            return n - v >= 5 && (buf[off + v] == 'c' || buf[off + v] == 'C') && (buf[off + v + 1] == 'l' || buf[off + v + 1] == 'L');
        }
        return false;
    }
}
