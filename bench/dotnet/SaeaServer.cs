// The SocketAsyncEventArgs documentation's sample server (the Server class of the
// SocketAsyncEventArgs page, its BufferManager and SocketAsyncEventArgsPool), as a bench peer.
// Kept as the sample writes it (less what nobody calls: FreeBuffer with its free list, the pool's Count),
// with four changes, made the same way in the C++ port
// (bench/servers/compat_saea_server.cpp):
//  - operations that complete synchronously are taken in a loop (StartAccept, Pump) where the
//    sample recurses, so a burst of ready connections or data cannot overflow the stack;
//  - a receive window is reset to the whole buffer after each send (the sample shrinks it to the
//    last BytesTransferred, so one short read would cap every later one);
//  - a failed accept is skipped instead of dereferencing a null AcceptSocket;
//  - an http mode (HttpMin.cs) beside the echo.
using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Threading;

// The SetBuffer(Byte[], Int32, Int32) page's BufferManager: one large array cut into
// per-operation segments, so buffers are not allocated per operation nor fragment the heap.
class BufferManager
{
    int m_numBytes;                 // the total number of bytes controlled by the buffer pool
    byte[] m_buffer;                // the underlying byte array maintained by the Buffer Manager
    int m_currentIndex;
    int m_bufferSize;

    public BufferManager(int totalBytes, int bufferSize)
    {
        m_numBytes = totalBytes;
        m_currentIndex = 0;
        m_bufferSize = bufferSize;
    }

    // Allocates buffer space used by the buffer pool
    public void InitBuffer()
    {
        m_buffer = new byte[m_numBytes];
    }

    // Assigns a buffer from the buffer pool to the specified SocketAsyncEventArgs object;
    // false when the pool is used up.
    public bool SetBuffer(SocketAsyncEventArgs args)
    {
        if ((m_numBytes - m_bufferSize) < m_currentIndex)
            return false;
        args.SetBuffer(m_buffer, m_currentIndex, m_bufferSize);
        m_currentIndex += m_bufferSize;
        return true;
    }
}

// The SocketAsyncEventArgs constructor page's pool of reusable args.
class SocketAsyncEventArgsPool
{
    Stack<SocketAsyncEventArgs> m_pool;

    public SocketAsyncEventArgsPool(int capacity)
    {
        m_pool = new Stack<SocketAsyncEventArgs>(capacity);
    }

    public void Push(SocketAsyncEventArgs item)
    {
        if (item == null) throw new ArgumentNullException("Items added to a SocketAsyncEventArgsPool cannot be null");
        lock (m_pool) { m_pool.Push(item); }
    }

    public SocketAsyncEventArgs Pop()
    {
        lock (m_pool) { return m_pool.Pop(); }
    }

}

class AsyncUserToken
{
    public Socket Socket;
    // http mode: the connection's receive segment, the bytes pending in it, the request being
    // answered and whether its answer closes the connection.
    public byte[] Buffer;
    public int Base, Pending, Consumed;
    public bool Close;
}

// Implements the connection logic for the socket server. After accepting a connection, all data
// read from the client is sent back to the client (http mode: each request is answered). The
// read and echo back pattern is continued until the client disconnects.
class SaeaServer
{
    int m_numConnections;       // the maximum number of connections the sample is designed to handle simultaneously
    int m_receiveBufferSize;    // buffer size to use for each socket I/O operation
    BufferManager m_bufferManager;
    const int opsToPreAlloc = 2;  // read, write (don't alloc buffer space for accepts)
    Socket listenSocket;
    SocketAsyncEventArgsPool m_readWritePool;
    long m_totalBytesRead;      // counter of the total # bytes received by the server
    int m_numConnectedSockets;  // the total number of clients connected to the server
    Semaphore m_maxNumberAcceptedClients;
    readonly bool m_http;

    enum Next { Receive, Send, Closed }

    public SaeaServer(int numConnections, int receiveBufferSize, bool http)
    {
        m_totalBytesRead = 0;
        m_numConnectedSockets = 0;
        m_numConnections = numConnections;
        m_receiveBufferSize = receiveBufferSize;
        m_http = http;
        // allocate buffers such that the maximum number of sockets can have one outstanding read
        // and write posted to the socket simultaneously
        m_bufferManager = new BufferManager(receiveBufferSize * numConnections * opsToPreAlloc, receiveBufferSize);
        m_readWritePool = new SocketAsyncEventArgsPool(numConnections);
        m_maxNumberAcceptedClients = new Semaphore(numConnections, numConnections);
    }

    // Initializes the server by preallocating reusable buffers and context objects.
    public void Init()
    {
        m_bufferManager.InitBuffer();
        for (int i = 0; i < m_numConnections; i++)
        {
            var readWriteEventArg = new SocketAsyncEventArgs();
            readWriteEventArg.Completed += new EventHandler<SocketAsyncEventArgs>(IO_Completed);
            var token = new AsyncUserToken();
            readWriteEventArg.UserToken = token;
            // assign a byte buffer from the buffer pool to the SocketAsyncEventArg object
            m_bufferManager.SetBuffer(readWriteEventArg);
            token.Buffer = readWriteEventArg.Buffer;
            token.Base = readWriteEventArg.Offset;
            m_readWritePool.Push(readWriteEventArg);
        }
    }

    // Starts the server listening for incoming connection requests; returns its port.
    public int Start(IPEndPoint localEndPoint, int backlog)
    {
        listenSocket = new Socket(localEndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listenSocket.Bind(localEndPoint);
        listenSocket.Listen(backlog);
        StartAccept(null);
        return ((IPEndPoint)listenSocket.LocalEndPoint).Port;
    }

    // Begins accept operations, taking those that complete synchronously in a loop.
    public void StartAccept(SocketAsyncEventArgs acceptEventArg)
    {
        if (acceptEventArg == null)
        {
            acceptEventArg = new SocketAsyncEventArgs();
            acceptEventArg.Completed += new EventHandler<SocketAsyncEventArgs>(AcceptEventArg_Completed);
        }
        for (;;)
        {
            // socket must be cleared since the context object is being reused
            acceptEventArg.AcceptSocket = null;
            m_maxNumberAcceptedClients.WaitOne();
            if (listenSocket.AcceptAsync(acceptEventArg))
                return;
            ProcessAccept(acceptEventArg);
        }
    }

    // The callback of an accept that completed later.
    void AcceptEventArg_Completed(object sender, SocketAsyncEventArgs e)
    {
        ProcessAccept(e);
        StartAccept(e);
    }

    void ProcessAccept(SocketAsyncEventArgs e)
    {
        if (e.SocketError != SocketError.Success)
        {
            m_maxNumberAcceptedClients.Release();
            return;
        }
        Interlocked.Increment(ref m_numConnectedSockets);
        // Get the socket for the accepted client connection and put it into the UserToken
        SocketAsyncEventArgs readEventArgs = m_readWritePool.Pop();
        var token = (AsyncUserToken)readEventArgs.UserToken;
        token.Socket = e.AcceptSocket;
        token.Pending = 0;
        token.Close = false;
        readEventArgs.SetBuffer(token.Buffer, token.Base, m_receiveBufferSize);
        // As soon as the client is connected, post a receive to the connection
        if (!e.AcceptSocket.ReceiveAsync(readEventArgs))
            Pump(readEventArgs, true);
    }

    // Called whenever a receive or send operation is completed on a socket
    void IO_Completed(object sender, SocketAsyncEventArgs e)
    {
        switch (e.LastOperation)
        {
            case SocketAsyncOperation.Receive:
                Pump(e, true);
                break;
            case SocketAsyncOperation.Send:
                Pump(e, false);
                break;
            default:
                throw new ArgumentException("The last operation completed on the socket was not a receive or send");
        }
    }

    // Goes on from a completed receive (or send) for as long as operations complete synchronously.
    void Pump(SocketAsyncEventArgs e, bool received)
    {
        var token = (AsyncUserToken)e.UserToken;
        Next next = received ? ProcessReceive(e, token) : ProcessSend(e, token);
        for (;;)
        {
            if (next == Next.Closed)
                return;
            if (next == Next.Send)
            {
                if (token.Socket.SendAsync(e)) return;
                next = ProcessSend(e, token);
            }
            else
            {
                if (token.Socket.ReceiveAsync(e)) return;
                next = ProcessReceive(e, token);
            }
        }
    }

    // A receive completed: echo the data back (http: answer the request). If the remote host
    // closed the connection, then the socket is closed.
    Next ProcessReceive(SocketAsyncEventArgs e, AsyncUserToken token)
    {
        if (e.BytesTransferred == 0 || e.SocketError != SocketError.Success)
        {
            CloseClientSocket(e);
            return Next.Closed;
        }
        Interlocked.Add(ref m_totalBytesRead, e.BytesTransferred);
        if (!m_http)
        {
            e.SetBuffer(e.Offset, e.BytesTransferred);
            return Next.Send;
        }
        token.Pending += e.BytesTransferred;
        return NextRequest(e, token);
    }

    // A send completed: read the next block of data sent from the client.
    Next ProcessSend(SocketAsyncEventArgs e, AsyncUserToken token)
    {
        if (e.SocketError != SocketError.Success)
        {
            CloseClientSocket(e);
            return Next.Closed;
        }
        if (!m_http)
        {
            e.SetBuffer(e.Offset, m_receiveBufferSize);
            return Next.Receive;
        }
        if (token.Close)
        {
            CloseClientSocket(e);
            return Next.Closed;
        }
        int rest = token.Pending - token.Consumed;
        if (rest > 0)
            Buffer.BlockCopy(token.Buffer, token.Base + token.Consumed, token.Buffer, token.Base, rest);
        token.Pending = rest;
        return NextRequest(e, token);
    }

    // http: answers the first complete request pending, or receives more of it.
    Next NextRequest(SocketAsyncEventArgs e, AsyncUserToken token)
    {
        int end = HttpMin.RequestEnd(token.Buffer, token.Base, token.Pending);
        if (end > 0)
        {
            token.Close = HttpMin.WantsClose(token.Buffer, token.Base, end);
            token.Consumed = end;
            byte[] reply = token.Close ? HttpMin.OkClose : HttpMin.Ok;
            e.SetBuffer(reply, 0, reply.Length);
            return Next.Send;
        }
        if (token.Pending == m_receiveBufferSize)
        {
            token.Close = true;
            e.SetBuffer(HttpMin.TooLarge, 0, HttpMin.TooLarge.Length);
            return Next.Send;
        }
        e.SetBuffer(token.Buffer, token.Base + token.Pending, m_receiveBufferSize - token.Pending);
        return Next.Receive;
    }

    void CloseClientSocket(SocketAsyncEventArgs e)
    {
        var token = (AsyncUserToken)e.UserToken;
        // close the socket associated with the client
        try
        {
            token.Socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception) { }  // throws if client process has already closed
        token.Socket.Close();
        token.Socket = null;
        Interlocked.Decrement(ref m_numConnectedSockets);
        // Free the SocketAsyncEventArg so they can be reused by another client
        e.SetBuffer(token.Buffer, token.Base, m_receiveBufferSize);
        m_readWritePool.Push(e);
        m_maxNumberAcceptedClients.Release();
    }
}
