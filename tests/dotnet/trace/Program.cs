// The .NET side of the differential compat tests: each scenario prints a trace of what a caller
// can observe (which calls completed synchronously, SocketError values, BytesTransferred,
// exception types in order, what the peer saw). tests/dotnet/trace_port.cpp is its port to
// ringsock::compat, written by the README's mechanical edit, and must print the same lines.
using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;

static class Trace {
  static void T(string line) { Console.WriteLine(line); }

  static string Ex(Exception e) {
    string param = e is ArgumentException a && a.ParamName != null ? a.ParamName : "-";
    string code = e is SocketException se ? " code=" + (int)se.SocketErrorCode : "";
    return "type=" + e.GetType().Name + " param=" + param + code;
  }

  static Socket Listener() {
    var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    l.Bind(new IPEndPoint(IPAddress.Loopback, 0));
    l.Listen(16);
    return l;
  }

  // A blocking peer (the other end the scenario talks to).
  static Socket Peer(Socket listener) {
    var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    c.Connect(listener.LocalEndPoint);
    return c;
  }

  static Socket AcceptOne(Socket listener) {
    var e = new SocketAsyncEventArgs();
    var done = new ManualResetEventSlim();
    e.Completed += (s, a) => done.Set();
    if (listener.AcceptAsync(e)) done.Wait();
    return e.AcceptSocket;
  }

  // The seed's AcceptAsync loop: a pending first accept, then connections already queued
  // complete synchronously, each into a new AcceptSocket.
  static void AcceptLoop() {
    Socket l = Listener();
    var e = new SocketAsyncEventArgs();
    var done = new ManualResetEventSlim();
    e.Completed += (s, a) => done.Set();
    bool pending = l.AcceptAsync(e);
    T("accept 1 pending=" + pending);
    Socket c1 = Peer(l);
    if (pending) done.Wait();
    T("accept 1 error=" + (int)e.SocketError + " connected=" + e.AcceptSocket.Connected +
      " op=" + e.LastOperation);
    Socket s1 = e.AcceptSocket;
    Socket c2 = Peer(l), c3 = Peer(l);
    Thread.Sleep(300);
    var accepted = new List<Socket> { s1 };
    for (int i = 2; i <= 3; ++i) {
      done.Reset();
      e.AcceptSocket = null;
      pending = l.AcceptAsync(e);
      T("accept " + i + " pending=" + pending);
      if (pending) done.Wait();
      T("accept " + i + " error=" + (int)e.SocketError + " connected=" + e.AcceptSocket.Connected +
        " new=" + !accepted.Contains(e.AcceptSocket));
      accepted.Add(e.AcceptSocket);
    }
    c1.Send(Encoding.ASCII.GetBytes("hello"));
    var r = new SocketAsyncEventArgs();
    var rdone = new ManualResetEventSlim();
    r.Completed += (s, a) => rdone.Set();
    r.SetBuffer(new byte[16], 0, 16);
    Thread.Sleep(100);
    pending = s1.ReceiveAsync(r);
    if (pending) rdone.Wait();
    T("receive error=" + (int)r.SocketError + " bytes=" + r.BytesTransferred + " data=" +
      Encoding.ASCII.GetString(r.Buffer, r.Offset, r.BytesTransferred));
    foreach (var s in accepted) s.Dispose();
    c1.Dispose(); c2.Dispose(); c3.Dispose();
    l.Dispose();
  }

  // AcceptAsync's checks and their order.
  static void AcceptValidation() {
    Socket l = Listener();
    try { l.AcceptAsync((SocketAsyncEventArgs)null); T("null: no exception"); } catch (Exception x) { T("null: " + Ex(x)); }
    var withList = new SocketAsyncEventArgs();
    withList.BufferList = new List<ArraySegment<byte>> { new ArraySegment<byte>(new byte[8]) };
    try { l.AcceptAsync(withList); T("bufferlist: no exception"); } catch (Exception x) { T("bufferlist: " + Ex(x)); }
    var bound = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    bound.Bind(new IPEndPoint(IPAddress.Loopback, 0));
    try { bound.AcceptAsync(new SocketAsyncEventArgs()); T("not listening: no exception"); } catch (Exception x) { T("not listening: " + Ex(x)); }
    var busy = new SocketAsyncEventArgs();
    T("busy first pending=" + l.AcceptAsync(busy));
    try { l.AcceptAsync(busy); T("busy again: no exception"); } catch (Exception x) { T("busy again: " + Ex(x)); }
    Socket d = Listener();
    d.Dispose();
    try { d.AcceptAsync(new SocketAsyncEventArgs()); T("disposed: no exception"); } catch (Exception x) { T("disposed: " + Ex(x)); }
    var done = new ManualResetEventSlim();
    busy.Completed += (s, a) => done.Set();
    l.Dispose();
    done.Wait();
    T("busy after dispose error=" + (int)busy.SocketError);
    bound.Dispose();
  }

  // Two receives pending on one socket complete in the order they were started.
  static void ReceiveConcurrent() {
    Socket l = Listener();
    Socket c = Peer(l);
    Socket s = AcceptOne(l);
    var got = new Dictionary<string, string>();  // printed e1 then e2: the pool may run them in either order
    var all = new CountdownEvent(2);
    var e1 = new SocketAsyncEventArgs();
    var e2 = new SocketAsyncEventArgs();
    e1.SetBuffer(new byte[3], 0, 3);
    e2.SetBuffer(new byte[3], 0, 3);
    e1.UserToken = "e1";
    e2.UserToken = "e2";
    EventHandler<SocketAsyncEventArgs> h = (o, a) => {
      lock (got) got[(string)a.UserToken] = a.UserToken + " error=" + (int)a.SocketError + " bytes=" +
                                            a.BytesTransferred + " data=" +
                                            Encoding.ASCII.GetString(a.Buffer, 0, a.BytesTransferred);
      all.Signal();
    };
    e1.Completed += h;
    e2.Completed += h;
    T("e1 pending=" + s.ReceiveAsync(e1));
    T("e2 pending=" + s.ReceiveAsync(e2));
    c.Send(Encoding.ASCII.GetBytes("abcdef"));
    all.Wait();
    T(got["e1"]);
    T(got["e2"]);
    s.Dispose(); c.Dispose(); l.Dispose();
  }

  // UDP: SendToAsync to a bound peer, ReceiveFromAsync says who sent it.
  static void Udp() {
    var a = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    var b = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    a.Bind(new IPEndPoint(IPAddress.Loopback, 0));
    b.Bind(new IPEndPoint(IPAddress.Loopback, 0));
    var r = new SocketAsyncEventArgs();
    var rdone = new ManualResetEventSlim();
    r.Completed += (s, x) => rdone.Set();
    r.SetBuffer(new byte[16], 0, 16);
    r.RemoteEndPoint = new IPEndPoint(IPAddress.Any, 0);
    T("receivefrom pending=" + b.ReceiveFromAsync(r));
    var e = new SocketAsyncEventArgs();
    var sdone = new ManualResetEventSlim();
    e.Completed += (s, x) => sdone.Set();
    e.SetBuffer(Encoding.ASCII.GetBytes("ping"), 0, 4);
    e.RemoteEndPoint = b.LocalEndPoint;
    bool sp = a.SendToAsync(e);
    if (sp) sdone.Wait();
    T("sendto error=" + (int)e.SocketError + " bytes=" + e.BytesTransferred);
    rdone.Wait();
    var from = (IPEndPoint)r.RemoteEndPoint;
    T("receivefrom error=" + (int)r.SocketError + " bytes=" + r.BytesTransferred + " data=" +
      Encoding.ASCII.GetString(r.Buffer, 0, r.BytesTransferred) + " from_sender=" +
      (from.Port == ((IPEndPoint)a.LocalEndPoint).Port));
    a.Dispose(); b.Dispose();
  }

  // Dispose with a receive pending: it completes with OperationAborted; the peer sees a reset.
  static void DisposePending() {
    Socket l = Listener();
    Socket c = Peer(l);
    Socket s = AcceptOne(l);
    var e = new SocketAsyncEventArgs();
    var done = new ManualResetEventSlim();
    e.Completed += (o, a) => done.Set();
    e.SetBuffer(new byte[16], 0, 16);
    T("receive pending=" + s.ReceiveAsync(e));
    s.Dispose();
    done.Wait();
    T("receive error=" + (int)e.SocketError + " bytes=" + e.BytesTransferred);
    var buf = new byte[16];
    try {
      int n = c.Receive(buf);
      T("peer: " + (n == 0 ? "end of stream" : "data"));
    } catch (SocketException x) {
      T("peer: " + x.SocketErrorCode);
    }
    c.Dispose(); l.Dispose();
  }

  // Accept with a receive buffer: Linux .NET refuses it; ringsock accepts (a documented difference).
  static void AcceptBuffer() {
    Socket l = Listener();
    var e = new SocketAsyncEventArgs();
    e.SetBuffer(new byte[256], 0, 256);
    try {
      T("accept with buffer pending=" + l.AcceptAsync(e));
    } catch (Exception x) {
      T("accept with buffer: " + Ex(x));
    }
    l.Dispose();
  }

  // The seed's BeginAccept / EndAccept / Listen_Callback chain: the callback ends the accept and
  // begins the next one.
  static int chained;
  static void Listen_Callback(IAsyncResult ar) {
    Socket s = (Socket)ar.AsyncState;
    Socket s2 = s.EndAccept(ar);
    T("callback connected=" + s2.Connected + " sync=" + ar.CompletedSynchronously);
    s2.Dispose();
    // Counted after the next accept is begun: the main flow connects the next client only then.
    if (Volatile.Read(ref chained) < 1) s.BeginAccept(new AsyncCallback(Listen_Callback), s);
    Interlocked.Increment(ref chained);
  }

  static void BeginAcceptChain() {
    Socket l = Listener();
    IAsyncResult r = l.BeginAccept(new AsyncCallback(Listen_Callback), l);
    T("begin sync=" + r.CompletedSynchronously);
    Socket c1 = Peer(l);
    SpinWait.SpinUntil(() => Volatile.Read(ref chained) >= 1, 5000);
    Thread.Sleep(50);
    Socket c2 = Peer(l);
    SpinWait.SpinUntil(() => Volatile.Read(ref chained) >= 2, 5000);
    T("accepted " + Volatile.Read(ref chained));
    c1.Dispose(); c2.Dispose(); l.Dispose();
  }

  // ReceiveAsync's, SendAsync's and ConnectAsync's checks, and a receive on a socket that is not
  // connected.
  static void OpValidation() {
    var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    try { s.ReceiveAsync((SocketAsyncEventArgs)null); T("receive null: no exception"); } catch (Exception x) { T("receive null: " + Ex(x)); }
    try { s.SendAsync((SocketAsyncEventArgs)null); T("send null: no exception"); } catch (Exception x) { T("send null: " + Ex(x)); }
    try { s.ConnectAsync((SocketAsyncEventArgs)null); T("connect null: no exception"); } catch (Exception x) { T("connect null: " + Ex(x)); }
    var noRemote = new SocketAsyncEventArgs();
    try { s.ConnectAsync(noRemote); T("connect no remote: no exception"); } catch (Exception x) { T("connect no remote: " + Ex(x)); }
    var withList = new SocketAsyncEventArgs();
    withList.RemoteEndPoint = new IPEndPoint(IPAddress.Loopback, 9);
    withList.BufferList = new List<ArraySegment<byte>> { new ArraySegment<byte>(new byte[8]) };
    try { s.ConnectAsync(withList); T("connect bufferlist: no exception"); } catch (Exception x) { T("connect bufferlist: " + Ex(x)); }
    var r = new SocketAsyncEventArgs();
    var done = new ManualResetEventSlim();
    r.Completed += (o, a) => done.Set();
    r.SetBuffer(new byte[8], 0, 8);
    try {
      bool p = s.ReceiveAsync(r);
      if (p) done.Wait();
      T("receive not connected pending=" + p + " error=" + (int)r.SocketError);
    } catch (Exception x) {
      T("receive not connected: " + Ex(x));
    }
    var w = new SocketAsyncEventArgs();
    var wdone = new ManualResetEventSlim();
    w.Completed += (o, a) => wdone.Set();
    w.SetBuffer(new byte[8], 0, 8);
    try {
      bool p = s.SendAsync(w);
      if (p) wdone.Wait();
      T("send not connected pending=" + p + " error=" + (int)w.SocketError);
    } catch (Exception x) {
      T("send not connected: " + Ex(x));
    }
    s.Dispose();
    try { s.ReceiveAsync(new SocketAsyncEventArgs()); T("receive disposed: no exception"); } catch (Exception x) { T("receive disposed: " + Ex(x)); }
    try { s.SendAsync(new SocketAsyncEventArgs()); T("send disposed: no exception"); } catch (Exception x) { T("send disposed: " + Ex(x)); }
    var e = new SocketAsyncEventArgs();
    e.RemoteEndPoint = new IPEndPoint(IPAddress.Loopback, 9);
    try { s.ConnectAsync(e); T("connect disposed: no exception"); } catch (Exception x) { T("connect disposed: " + Ex(x)); }
  }

  // BeginReceive / BeginSend on a socket that is not connected: what Begin and End say.
  static void ApmNotConnected() {
    var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    var buf = new byte[8];
    try {
      IAsyncResult r = s.BeginReceive(buf, 0, 8, SocketFlags.None, null, null);
      T("beginreceive sync=" + r.CompletedSynchronously);
      try { T("endreceive bytes=" + s.EndReceive(r)); } catch (Exception x) { T("endreceive: " + Ex(x)); }
    } catch (Exception x) {
      T("beginreceive: " + Ex(x));
    }
    try {
      IAsyncResult r = s.BeginSend(buf, 0, 8, SocketFlags.None, null, null);
      T("beginsend sync=" + r.CompletedSynchronously);
      try { T("endsend bytes=" + s.EndSend(r)); } catch (Exception x) { T("endsend: " + Ex(x)); }
    } catch (Exception x) {
      T("beginsend: " + Ex(x));
    }
    s.Dispose();
  }

  // ConnectAsync with a buffer: the buffer goes out once connected; BytesTransferred says so.
  static void ConnectWithBuffer() {
    Socket l = Listener();
    var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    var e = new SocketAsyncEventArgs();
    var done = new ManualResetEventSlim();
    e.Completed += (o, a) => done.Set();
    e.RemoteEndPoint = l.LocalEndPoint;
    e.SetBuffer(Encoding.ASCII.GetBytes("hello"), 0, 5);
    bool p = c.ConnectAsync(e);
    T("connect pending=" + p);
    if (p) done.Wait();
    T("connect error=" + (int)e.SocketError + " bytes=" + e.BytesTransferred + " connected=" + c.Connected +
      " op=" + e.LastOperation);
    Socket s = AcceptOne(l);
    var buf = new byte[16];
    int n = 0;
    while (n < 5) {
      int k = s.Receive(buf, n, buf.Length - n, SocketFlags.None);
      if (k == 0) break;
      n += k;
    }
    T("peer got=" + Encoding.ASCII.GetString(buf, 0, n));
    s.Dispose(); c.Dispose(); l.Dispose();
  }

  // DisconnectAsync with reuse, then the same socket connects again.
  static void DisconnectReuse() {
    Socket l = Listener();
    var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    c.Connect(l.LocalEndPoint);
    Socket s1 = AcceptOne(l);
    var d = new SocketAsyncEventArgs();
    var ddone = new ManualResetEventSlim();
    d.Completed += (o, a) => ddone.Set();
    d.DisconnectReuseSocket = true;
    bool p = c.DisconnectAsync(d);
    if (p) ddone.Wait();
    T("disconnect pending=" + p + " error=" + (int)d.SocketError + " connected=" + c.Connected);
    var buf = new byte[8];
    int n = s1.Receive(buf);
    T("peer after disconnect: " + (n == 0 ? "end of stream" : "data"));
    var e = new SocketAsyncEventArgs();
    var done = new ManualResetEventSlim();
    e.Completed += (o, a) => done.Set();
    e.RemoteEndPoint = l.LocalEndPoint;
    p = c.ConnectAsync(e);
    if (p) done.Wait();
    T("reconnect error=" + (int)e.SocketError + " connected=" + c.Connected);
    Socket s2 = AcceptOne(l);
    T("accepted again connected=" + s2.Connected);
    s1.Dispose(); s2.Dispose(); c.Dispose(); l.Dispose();
  }

  static int Main(string[] args) {
    var scenarios = new Dictionary<string, Action> {
      ["accept_loop"] = AcceptLoop,
      ["accept_validation"] = AcceptValidation,
      ["receive_concurrent"] = ReceiveConcurrent,
      ["udp"] = Udp,
      ["dispose_pending"] = DisposePending,
      ["accept_buffer"] = AcceptBuffer,
      ["begin_accept_chain"] = BeginAcceptChain,
      ["op_validation"] = OpValidation,
      ["apm_not_connected"] = ApmNotConnected,
      ["connect_with_buffer"] = ConnectWithBuffer,
      ["disconnect_reuse"] = DisconnectReuse,
    };
    if (args.Length != 1 || !scenarios.ContainsKey(args[0])) {
      Console.Error.WriteLine("usage: Trace " + string.Join("|", scenarios.Keys));
      return 2;
    }
    scenarios[args[0]]();
    return 0;
  }
}
