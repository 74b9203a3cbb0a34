// ringsock::compat: the .NET-shaped layer (SocketAsyncEventArgs and Begin/End). See the README's
// "Porting from .NET" and the behaviour list beside its tests, tests/COMPAT_BEHAVIOURS.md.
#pragma once

#include "ringsock/compat/async_result.hpp"
#include "ringsock/compat/enums.hpp"
#include "ringsock/compat/event.hpp"
#include "ringsock/compat/exceptions.hpp"
#include "ringsock/compat/ip_address.hpp"
#include "ringsock/compat/socket.hpp"
#include "ringsock/compat/socket_async_event_args.hpp"
