// .NET's socket enumerations, with .NET's names and values (the mapping rules of README.md, "Porting from .NET").
#pragma once

#include <system_error>

namespace ringsock::compat {

// .NET: System.Net.Sockets.SocketError (Winsock values, as .NET reports them on Linux too).
enum class SocketError : int {
  Success = 0,
  SocketError = -1,
  OperationAborted = 995,
  IOPending = 997,
  Interrupted = 10004,
  AccessDenied = 10013,
  Fault = 10014,
  InvalidArgument = 10022,
  TooManyOpenSockets = 10024,
  WouldBlock = 10035,
  InProgress = 10036,
  AlreadyInProgress = 10037,
  NotSocket = 10038,
  DestinationAddressRequired = 10039,
  MessageSize = 10040,
  ProtocolType = 10041,
  ProtocolOption = 10042,
  ProtocolNotSupported = 10043,
  SocketNotSupported = 10044,
  OperationNotSupported = 10045,
  ProtocolFamilyNotSupported = 10046,
  AddressFamilyNotSupported = 10047,
  AddressAlreadyInUse = 10048,
  AddressNotAvailable = 10049,
  NetworkDown = 10050,
  NetworkUnreachable = 10051,
  NetworkReset = 10052,
  ConnectionAborted = 10053,
  ConnectionReset = 10054,
  NoBufferSpaceAvailable = 10055,
  IsConnected = 10056,
  NotConnected = 10057,
  Shutdown = 10058,
  TimedOut = 10060,
  ConnectionRefused = 10061,
  HostDown = 10064,
  HostUnreachable = 10065,
  ProcessLimit = 10067,
  Disconnecting = 10101,
};

// The SocketError .NET reports for an errno (its Linux mapping); Success for an empty code.
SocketError ToSocketError(std::error_code ec) noexcept;
SocketError ToSocketError(int err) noexcept;

// .NET: System.Net.Sockets.AddressFamily (the members ringsock supports).
enum class AddressFamily : int { Unspecified = 0, Unix = 1, InterNetwork = 2, InterNetworkV6 = 23 };
// .NET: System.Net.Sockets.SocketType
enum class SocketType : int { Unknown = -1, Stream = 1, Dgram = 2 };
// .NET: System.Net.Sockets.ProtocolType
enum class ProtocolType : int { Unspecified = 0, IP = 0, Tcp = 6, Udp = 17, Unknown = -1 };
// .NET: System.Net.Sockets.SocketShutdown
enum class SocketShutdown : int { Receive = 0, Send = 1, Both = 2 };
// .NET: System.Net.Sockets.SocketFlags. Receives take Peek and OutOfBand, sends OutOfBand and
// DontRoute (one buffer); a flag Linux has no mapping for completes with OperationNotSupported.
enum class SocketFlags : int {
  None = 0,
  OutOfBand = 1,
  Peek = 2,
  DontRoute = 4,
  MaxIOVectorLength = 16,
  Truncated = 0x100,
  ControlDataTruncated = 0x200,
  Broadcast = 0x400,
  Multicast = 0x800,
  Partial = 0x8000,
};
// .NET: System.Net.Sockets.SocketAsyncOperation
enum class SocketAsyncOperation : int {
  None = 0,
  Accept = 1,
  Connect = 2,
  Disconnect = 3,
  Receive = 4,
  ReceiveFrom = 5,
  ReceiveMessageFrom = 6,
  Send = 7,
  SendPackets = 8,
  SendTo = 9,
};

}  // namespace ringsock::compat
