// The Socket.EndAccept page's Begin/End server (Listen_Callback -> BeginReceive -> Read_Callback),
// as a bench peer: it echoes what it reads (http mode: answers each request, HttpMin.cs) instead
// of collecting the stream until the end. Besides the seed it keeps accepting (BeginAccept again
// in Listen_Callback) and closes a connection whose End call throws. Ported line for line in
// bench/servers/compat_apm_server.cpp.
using System;
using System.Net;
using System.Net.Sockets;

// State object for reading client data asynchronously
class StateObject
{
    public Socket workSocket = null;
    public const int BUFFER_SIZE = HttpMin.MaxHeader;
    public byte[] buffer = new byte[BUFFER_SIZE];
    // http mode: the bytes pending in buffer, the request being answered, whether it closes
    public int pending, consumed;
    public bool close;
}

static class ApmServer
{
    static bool http;

    // Listens and posts the first BeginAccept; returns the port.
    public static int Start(IPEndPoint local, int backlog, bool httpMode)
    {
        http = httpMode;
        Socket s = new Socket(local.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(local);
        s.Listen(backlog);
        s.BeginAccept(new AsyncCallback(Listen_Callback), s);
        return ((IPEndPoint)s.LocalEndPoint).Port;
    }

    public static void Listen_Callback(IAsyncResult ar)
    {
        Socket s = (Socket)ar.AsyncState;
        Socket s2;
        try
        {
            s2 = s.EndAccept(ar);
        }
        catch (SocketException)
        {
            s.BeginAccept(new AsyncCallback(Listen_Callback), s);
            return;
        }
        StateObject so2 = new StateObject();
        so2.workSocket = s2;
        s2.BeginReceive(so2.buffer, 0, StateObject.BUFFER_SIZE, 0, new AsyncCallback(Read_Callback), so2);
        s.BeginAccept(new AsyncCallback(Listen_Callback), s);
    }

    public static void Read_Callback(IAsyncResult ar)
    {
        StateObject so = (StateObject)ar.AsyncState;
        Socket s = so.workSocket;
        int read;
        try
        {
            read = s.EndReceive(ar);
        }
        catch (SocketException)
        {
            s.Close();
            return;
        }
        if (read <= 0)
        {
            s.Close();
            return;
        }
        if (!http)
        {
            s.BeginSend(so.buffer, 0, read, 0, new AsyncCallback(Send_Callback), so);
            return;
        }
        so.pending += read;
        NextRequest(so);
    }

    public static void Send_Callback(IAsyncResult ar)
    {
        StateObject so = (StateObject)ar.AsyncState;
        Socket s = so.workSocket;
        try
        {
            s.EndSend(ar);
        }
        catch (SocketException)
        {
            s.Close();
            return;
        }
        if (!http)
        {
            s.BeginReceive(so.buffer, 0, StateObject.BUFFER_SIZE, 0, new AsyncCallback(Read_Callback), so);
            return;
        }
        if (so.close)
        {
            try
            {
                s.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException) { }  // the client has gone already
            s.Close();
            return;
        }
        int rest = so.pending - so.consumed;
        if (rest > 0)
            Buffer.BlockCopy(so.buffer, so.consumed, so.buffer, 0, rest);
        so.pending = rest;
        NextRequest(so);
    }

    // http: answers the first complete request pending, or receives more of it.
    static void NextRequest(StateObject so)
    {
        Socket s = so.workSocket;
        int end = HttpMin.RequestEnd(so.buffer, 0, so.pending);
        byte[] reply;
        if (end > 0)
        {
            so.close = HttpMin.WantsClose(so.buffer, 0, end);
            so.consumed = end;
            reply = so.close ? HttpMin.OkClose : HttpMin.Ok;
        }
        else if (so.pending == StateObject.BUFFER_SIZE)
        {
            so.close = true;
            reply = HttpMin.TooLarge;
        }
        else
        {
            s.BeginReceive(so.buffer, so.pending, StateObject.BUFFER_SIZE - so.pending, 0,
                           new AsyncCallback(Read_Callback), so);
            return;
        }
        s.BeginSend(reply, 0, reply.Length, 0, new AsyncCallback(Send_Callback), so);
    }
}
