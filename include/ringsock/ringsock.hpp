// ringsock: C++20 coroutine networking on io_uring. The umbrella header.
#pragma once

#include "ringsock/endpoint.hpp"
#include "ringsock/error.hpp"
#include "ringsock/io_context.hpp"
#include "ringsock/io_options.hpp"
#include "ringsock/received_buffer.hpp"
#include "ringsock/result.hpp"
#include "ringsock/runtime.hpp"
#include "ringsock/socket.hpp"
#include "ringsock/socket_args.hpp"
#include "ringsock/task.hpp"
#include "ringsock/timer.hpp"
#include "ringsock/when_all.hpp"
