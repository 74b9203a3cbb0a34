// SocketFlags as recv(2)/send(2) flags. Private to the compat layer.
#pragma once

#include <sys/socket.h>

#include "ringsock/compat/enums.hpp"

namespace ringsock::compat {

// The flags of a receive (Peek, OutOfBand) or a send (OutOfBand, DontRoute; Peek, which Linux
// ignores on a send, is dropped). -1: a flag Linux has no mapping for, which .NET 10 here
// reports as OperationNotSupported, completing synchronously.
inline int message_flags(SocketFlags f, bool receive) noexcept {
  int v = static_cast<int>(f);
  const int oob = static_cast<int>(SocketFlags::OutOfBand), peek = static_cast<int>(SocketFlags::Peek),
            dontroute = static_cast<int>(SocketFlags::DontRoute);
  if (!receive) v &= ~peek;
  if ((v & ~(receive ? (oob | peek) : (oob | dontroute))) != 0) return -1;
  int out = 0;
  if (v & oob) out |= MSG_OOB;
  if (v & peek) out |= MSG_PEEK;
  if (v & dontroute) out |= MSG_DONTROUTE;
  return out;
}

}  // namespace ringsock::compat
