// The .NET peers of the benchmark (README.md, "Coming from .NET"):
//   dotnet_servers saea|apm echo|http [port [max_connections]]   (max_connections: saea)
// saea: SaeaServer.cs, the SocketAsyncEventArgs documentation's sample server (buffer manager,
// args pool); apm: ApmServer.cs, the EndAccept page's Begin/End Listen_Callback server. Each has
// its port to ringsock::compat in bench/servers (compat_saea_server.cpp, compat_apm_server.cpp).
// Prints "PORT <n>" once listening on 127.0.0.1, then serves until the process is stopped.
using System;
using System.Net;
using System.Threading;

static class Program
{
    // Enough for bench.py's W7 (10,000 idle connections and 50 busy ones) with room to spare.
    const int DefaultMaxConnections = 12000;
    const int Backlog = 4096;  // as the other bench servers (the samples use 100)

    static int Main(string[] args)
    {
        if (args.Length < 2 || (args[0] != "saea" && args[0] != "apm") || (args[1] != "echo" && args[1] != "http"))
        {
            Console.Error.WriteLine("usage: dotnet_servers saea|apm echo|http [port [max_connections]]");
            return 2;
        }
        bool http = args[1] == "http";
        var local = new IPEndPoint(IPAddress.Loopback, args.Length > 2 ? int.Parse(args[2]) : 0);
        int port;
        if (args[0] == "saea")
        {
            int max = args.Length > 3 ? int.Parse(args[3]) : DefaultMaxConnections;
            if (max < 1) throw new ArgumentOutOfRangeException("max_connections");
            var server = new SaeaServer(max, HttpMin.MaxHeader, http);
            server.Init();
            port = server.Start(local, Backlog);
        }
        else
        {
            port = ApmServer.Start(local, Backlog, http);
        }
        Console.WriteLine($"PORT {port}");
        Console.Out.Flush();
        Thread.Sleep(Timeout.Infinite);
        return 0;
    }
}
