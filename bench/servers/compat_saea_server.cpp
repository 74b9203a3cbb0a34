// bench server "compat-saea": bench/dotnet/SaeaServer.cs (the SocketAsyncEventArgs
// documentation's sample server, with its BufferManager and SocketAsyncEventArgsPool) ported to
// ringsock::compat by the README's mechanical edit ("Porting from .NET"), member for member
// (what nobody calls, FreeBuffer with its free list and the pool's Count, left out on both sides).
// Where the port is not a word-for-word edit, a comment says why:
//  - the sample's Semaphore becomes a count and a deferred accept: a WaitOne() on the
//    io_context's thread would deadlock (README), so an accept with no args free waits for
//    CloseClientSocket to release one;
//  - the pool's lock goes: every callback runs on the one io_context thread.
// Modes: echo and http (http_min.h). Prints "PORT <n>" once listening on 127.0.0.1.
//   compat_saea_server echo|http [port [max_connections]]
#include <cstdio>
#include <cstring>
#include <memory>
#include <stack>
#include <stdexcept>
#include <string>
#include <vector>

#include "http_min.h"
#include "ringsock/compat.hpp"

using namespace ringsock::compat;
namespace compat = ringsock::compat;

namespace {

// Mutable copies of http_min.h's answers: SetBuffer takes a writable span, as byte[] is.
struct Replies {
  std::vector<std::byte> ok, ok_close, too_large;
  Replies() {
    auto copy = [](const char* s) {
      std::vector<std::byte> v(std::strlen(s));
      std::memcpy(v.data(), s, v.size());
      return v;
    };
    ok = copy(http_ok);
    ok_close = copy(http_ok_close);
    too_large = copy(http_431);
  }
};
const Replies replies;
std::span<std::byte> reply_span(const std::vector<std::byte>& v) {
  return {const_cast<std::byte*>(v.data()), v.size()};  // only ever sent from, never written
}

// The SetBuffer(Byte[], Int32, Int32) page's BufferManager.
class BufferManager {
  int m_numBytes;                       // the total number of bytes controlled by the buffer pool
  std::unique_ptr<std::byte[]> m_buffer;  // the underlying byte array maintained by the Buffer Manager
  int m_currentIndex = 0;
  int m_bufferSize;

 public:
  BufferManager(int totalBytes, int bufferSize) : m_numBytes(totalBytes), m_bufferSize(bufferSize) {}

  // Allocates buffer space used by the buffer pool. (new byte[n] as in C#: the pages are the
  // kernel's zero pages until a receive writes them, as for the managed array.)
  void InitBuffer() { m_buffer.reset(new std::byte[m_numBytes]); }

  // Assigns a buffer from the buffer pool to the specified args; false when the pool is used up.
  bool SetBuffer(SocketAsyncEventArgs& args) {
    if ((m_numBytes - m_bufferSize) < m_currentIndex) return false;
    args.SetBuffer({m_buffer.get(), static_cast<std::size_t>(m_numBytes)}, m_currentIndex, m_bufferSize);
    m_currentIndex += m_bufferSize;
    return true;
  }
};

// The SocketAsyncEventArgs constructor page's pool of reusable args.
class SocketAsyncEventArgsPool {
  std::stack<SocketAsyncEventArgs*> m_pool;  // lock (m_pool) goes: one thread

 public:
  void Push(SocketAsyncEventArgs* item) {
    if (item == nullptr) throw ArgumentNullException("item");
    m_pool.push(item);
  }
  SocketAsyncEventArgs* Pop() {
    auto* e = m_pool.top();
    m_pool.pop();
    return e;
  }
};

class AsyncUserToken {
 public:
  std::shared_ptr<compat::Socket> Socket;  // (compat:: — the member's name hides the type)
  // http mode: the connection's receive segment, the bytes pending in it, the request being
  // answered and whether its answer closes the connection.
  std::span<std::byte> Buffer;
  int Base = 0, Pending = 0, Consumed = 0;
  bool Close = false;
};

// Implements the connection logic for the socket server (SaeaServer.cs).
class SaeaServer {
  int m_numConnections;     // the maximum number of connections the sample is designed to handle simultaneously
  int m_receiveBufferSize;  // buffer size to use for each socket I/O operation
  BufferManager m_bufferManager;
  static constexpr int opsToPreAlloc = 2;  // read, write (don't alloc buffer space for accepts)
  ringsock::io_context& m_ctx;
  std::shared_ptr<Socket> listenSocket;
  SocketAsyncEventArgsPool m_readWritePool;
  std::vector<std::unique_ptr<SocketAsyncEventArgs>> m_args;  // C#: the GC keeps them
  std::vector<std::unique_ptr<AsyncUserToken>> m_tokens;
  std::unique_ptr<SocketAsyncEventArgs> m_acceptArgs;
  long m_totalBytesRead = 0;     // counter of the total # bytes received by the server
  int m_numConnectedSockets = 0;  // the total number of clients connected to the server
  int m_maxNumberAcceptedClients;  // C#: Semaphore(numConnections, numConnections)
  bool m_acceptWaiting = false;    // an accept waits for a Release (C#: blocked in WaitOne)
  bool m_http;

  enum class Next { Receive, Send, Closed };

 public:
  SaeaServer(ringsock::io_context& ctx, int numConnections, int receiveBufferSize, bool http)
      : m_numConnections(numConnections),
        m_receiveBufferSize(receiveBufferSize),
        m_bufferManager(receiveBufferSize * numConnections * opsToPreAlloc, receiveBufferSize),
        m_ctx(ctx),
        m_maxNumberAcceptedClients(numConnections),
        m_http(http) {}

  // Initializes the server by preallocating reusable buffers and context objects.
  void Init() {
    m_bufferManager.InitBuffer();
    for (int i = 0; i < m_numConnections; i++) {
      auto& readWriteEventArg = *m_args.emplace_back(std::make_unique<SocketAsyncEventArgs>());
      readWriteEventArg.Completed += [this](Socket& sender, SocketAsyncEventArgs& e) { IO_Completed(sender, e); };
      auto* token = m_tokens.emplace_back(std::make_unique<AsyncUserToken>()).get();
      readWriteEventArg.UserToken(token);  // C#: the token object; here a pointer to it
      // assign a byte buffer from the buffer pool to the args object
      m_bufferManager.SetBuffer(readWriteEventArg);
      token->Buffer = readWriteEventArg.Buffer();
      token->Base = readWriteEventArg.Offset();
      m_readWritePool.Push(&readWriteEventArg);
    }
  }

  // Starts the server listening for incoming connection requests; returns its port.
  int Start(const IPEndPoint& localEndPoint, int backlog) {
    listenSocket = std::make_shared<Socket>(m_ctx, localEndPoint.AddressFamily(), SocketType::Stream,
                                            ProtocolType::Tcp);
    listenSocket->Bind(localEndPoint);
    listenSocket->Listen(backlog);
    StartAccept(nullptr);
    return std::dynamic_pointer_cast<IPEndPoint>(listenSocket->LocalEndPoint())->Port();
  }

  // Begins accept operations, taking those that complete synchronously in a loop.
  void StartAccept(SocketAsyncEventArgs* acceptEventArg) {
    if (acceptEventArg == nullptr) {
      m_acceptArgs = std::make_unique<SocketAsyncEventArgs>();
      acceptEventArg = m_acceptArgs.get();
      acceptEventArg->Completed += [this](Socket& sender, SocketAsyncEventArgs& e) {
        AcceptEventArg_Completed(sender, e);
      };
    }
    for (;;) {
      // socket must be cleared since the context object is being reused
      acceptEventArg->AcceptSocket(nullptr);
      // m_maxNumberAcceptedClients.WaitOne(): wait for CloseClientSocket instead of blocking
      if (m_maxNumberAcceptedClients == 0) {
        m_acceptWaiting = true;
        return;
      }
      --m_maxNumberAcceptedClients;
      if (listenSocket->AcceptAsync(*acceptEventArg)) return;
      // Not in the sample: an accept that fails at once means a listener closed or broken (compat
      // reports EMFILE later, after a back-off, through Completed), so stop instead of spinning.
      if (!ProcessAccept(*acceptEventArg)) {
        std::fprintf(stderr, "compat_saea_server: accept failed (%d): not accepting any more\n",
                     static_cast<int>(acceptEventArg->SocketError()));
        return;
      }
    }
  }

 private:
  // The callback of an accept that completed later.
  void AcceptEventArg_Completed(Socket&, SocketAsyncEventArgs& e) {
    ProcessAccept(e);
    StartAccept(&e);
  }

  // False when the accept failed.
  bool ProcessAccept(SocketAsyncEventArgs& e) {
    if (e.SocketError() != SocketError::Success) {
      Release();
      return false;
    }
    ++m_numConnectedSockets;  // Interlocked.Increment
    // Get the socket for the accepted client connection and put it into the UserToken
    SocketAsyncEventArgs& readEventArgs = *m_readWritePool.Pop();
    auto* token = std::any_cast<AsyncUserToken*>(readEventArgs.UserToken());
    token->Socket = e.AcceptSocket();
    token->Pending = 0;
    token->Close = false;
    readEventArgs.SetBuffer(token->Buffer, token->Base, m_receiveBufferSize);
    // As soon as the client is connected, post a receive to the connection
    if (!e.AcceptSocket()->ReceiveAsync(readEventArgs)) Pump(readEventArgs, true);
    return true;
  }

  // Called whenever a receive or send operation is completed on a socket
  void IO_Completed(Socket&, SocketAsyncEventArgs& e) {
    switch (e.LastOperation()) {
      case SocketAsyncOperation::Receive:
        Pump(e, true);
        break;
      case SocketAsyncOperation::Send:
        Pump(e, false);
        break;
      default:
        throw ArgumentException("The last operation completed on the socket was not a receive or send", "e");
    }
  }

  // Goes on from a completed receive (or send) for as long as operations complete synchronously.
  void Pump(SocketAsyncEventArgs& e, bool received) {
    auto* token = std::any_cast<AsyncUserToken*>(e.UserToken());
    Next next = received ? ProcessReceive(e, *token) : ProcessSend(e, *token);
    for (;;) {
      if (next == Next::Closed) return;
      if (next == Next::Send) {
        if (token->Socket->SendAsync(e)) return;
        next = ProcessSend(e, *token);
      } else {
        if (token->Socket->ReceiveAsync(e)) return;
        next = ProcessReceive(e, *token);
      }
    }
  }

  // A receive completed: echo the data back (http: answer the request). If the remote host
  // closed the connection, then the socket is closed.
  Next ProcessReceive(SocketAsyncEventArgs& e, AsyncUserToken& token) {
    if (e.BytesTransferred() == 0 || e.SocketError() != SocketError::Success) {
      CloseClientSocket(e);
      return Next::Closed;
    }
    m_totalBytesRead += e.BytesTransferred();  // Interlocked.Add
    if (!m_http) {
      e.SetBuffer(e.Offset(), e.BytesTransferred());
      return Next::Send;
    }
    token.Pending += e.BytesTransferred();
    return NextRequest(e, token);
  }

  // A send completed: read the next block of data sent from the client.
  Next ProcessSend(SocketAsyncEventArgs& e, AsyncUserToken& token) {
    if (e.SocketError() != SocketError::Success) {
      CloseClientSocket(e);
      return Next::Closed;
    }
    if (!m_http) {
      e.SetBuffer(e.Offset(), m_receiveBufferSize);
      return Next::Receive;
    }
    if (token.Close) {
      CloseClientSocket(e);
      return Next::Closed;
    }
    const int rest = token.Pending - token.Consumed;
    if (rest > 0)  // Buffer.BlockCopy
      std::memmove(token.Buffer.data() + token.Base, token.Buffer.data() + token.Base + token.Consumed,
                   static_cast<std::size_t>(rest));
    token.Pending = rest;
    return NextRequest(e, token);
  }

  // http: answers the first complete request pending, or receives more of it.
  Next NextRequest(SocketAsyncEventArgs& e, AsyncUserToken& token) {
    const char* req = reinterpret_cast<const char*>(token.Buffer.data() + token.Base);
    const auto end = static_cast<int>(http_request_end(req, static_cast<std::size_t>(token.Pending)));
    if (end > 0) {
      token.Close = http_wants_close(req, static_cast<std::size_t>(end)) != 0;
      token.Consumed = end;
      const auto& reply = token.Close ? replies.ok_close : replies.ok;
      e.SetBuffer(reply_span(reply), 0, static_cast<int>(reply.size()));
      return Next::Send;
    }
    if (token.Pending == m_receiveBufferSize) {
      token.Close = true;
      e.SetBuffer(reply_span(replies.too_large), 0, static_cast<int>(replies.too_large.size()));
      return Next::Send;
    }
    e.SetBuffer(token.Buffer, token.Base + token.Pending, m_receiveBufferSize - token.Pending);
    return Next::Receive;
  }

  void CloseClientSocket(SocketAsyncEventArgs& e) {
    auto* token = std::any_cast<AsyncUserToken*>(e.UserToken());
    // close the socket associated with the client
    try {
      token->Socket->Shutdown(SocketShutdown::Send);
    } catch (const std::exception&) {  // throws if client process has already closed
    }
    token->Socket->Close();
    token->Socket = nullptr;
    --m_numConnectedSockets;  // Interlocked.Decrement
    // Free the args so they can be reused by another client
    e.SetBuffer(token->Buffer, token->Base, m_receiveBufferSize);
    m_readWritePool.Push(&e);
    Release();
  }

  // m_maxNumberAcceptedClients.Release(): wakes the accept that waits for it.
  void Release() {
    ++m_maxNumberAcceptedClients;
    if (m_acceptWaiting) {
      m_acceptWaiting = false;
      StartAccept(m_acceptArgs.get());
    }
  }
};

// Enough for bench.py's W7 (10,000 idle connections and 50 busy ones) with room to spare.
constexpr int DefaultMaxConnections = 12000;
constexpr int Backlog = 4096;  // as the other bench servers (the samples use 100)

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "echo" && mode != "http") {
    std::fprintf(stderr, "usage: compat_saea_server echo|http [port [max_connections]]\n");
    return 2;
  }
  try {
    ringsock::io_context ctx;
    const int max = argc > 3 ? std::atoi(argv[3]) : DefaultMaxConnections;
    if (max < 1) throw std::invalid_argument("max_connections must be at least 1");
    SaeaServer server(ctx, max, HTTP_MAX_HEADER, mode == "http");
    server.Init();
    const int port = server.Start(IPEndPoint(IPAddress::Loopback, argc > 2 ? std::atoi(argv[2]) : 0), Backlog);
    std::printf("PORT %d\n", port);
    std::fflush(stdout);
    ctx.run();
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "compat_saea_server: %s\n", ex.what());
    return 1;
  }
  return 0;
}
