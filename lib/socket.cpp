#include "ringsock/socket.hpp"

#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <utility>

#include "acceptor.hpp"
#include "ringsock/socket_args.hpp"

namespace ringsock {

namespace {
[[noreturn]] void throw_errno(const char* what) { throw socket_error(errno, what); }
}  // namespace

socket::socket(io_context& ctx, address_family family, socket_type type, protocol proto) {
  int fd = ::socket(static_cast<int>(family), static_cast<int>(type) | SOCK_CLOEXEC,
                    static_cast<int>(proto));
  if (fd < 0) throw_errno("ringsock: socket");
  core_ = detail::access::make_core(ctx, fd);
  core_->kind = type == socket_type::stream ? detail::socket_core::kind_stream
                                            : detail::socket_core::kind_other;
}

socket::socket(io_context& ctx, int fd) noexcept : core_(detail::access::make_core(ctx, fd)) {}

socket::~socket() {
  close();
  release();
}

socket& socket::operator=(socket&& o) noexcept {
  if (this != &o) {
    close();
    release();
    core_ = std::exchange(o.core_, nullptr);
  }
  return *this;
}

void socket::release() noexcept {
  if (detail::socket_core* c = std::exchange(core_, nullptr)) {
    if (c->ctx && !c->ctx->running_in_this_thread()) {
      // Its last operations may be finishing on the loop's thread right now: the loop lets go.
      detail::access::retire_core(*c->ctx, c);
      return;
    }
    c->owned = false;
    detail::free_core_if_unused(c);  // else the last operation armed on it frees it
  }
}

io_context& socket::context() const {
  if (!core_ || !core_->ctx) throw socket_closed_error("context");
  return *core_->ctx;
}

void socket::close() noexcept {
  if (!is_open()) return;
  io_context* ctx = core_->ctx;
  if (ctx && !ctx->running_in_this_thread()) {
    // Another thread (a compat Socket dropped after EndX there): its receive side may be
    // running on the loop's thread right now, so the loop closes and frees the core.
    detail::access::retire_core(*ctx, std::exchange(core_, nullptr));
    return;
  }
  detail::close_core(*core_);
}

socket socket::listen(io_context& ctx, const endpoint& ep, int backlog) {
  socket s(ctx, ep.family(), socket_type::stream);
  if (ep.family() != address_family::unix_domain) s.set_reuse_address(true);
  s.bind(ep);
  s.listen(backlog);
  return s;
}

task<socket> socket::connect_async(io_context& ctx, endpoint ep, io_options o) {
  socket s(ctx, ep.family(), socket_type::stream);
  co_await s.connect_async(ep, std::move(o));
  co_return s;
}

void socket::bind(const endpoint& ep) {
  if (!is_open()) throw socket_closed_error("bind");
  if (::bind(core_->fd, ep.data(), ep.size()) != 0) throw_errno("ringsock: bind");
}

void socket::listen(int backlog) {
  if (!is_open()) throw socket_closed_error("listen");
  if (core_->listener && core_->listener->fed())  // it shares the accepting thread's socket
    throw std::logic_error("ringsock: listen on a hand-off listener would set every thread's backlog");
  if (::listen(core_->fd, backlog) != 0) throw_errno("ringsock: listen");
  detail::socket_core& c = *core_;
  if (!c.listener) c.listener = new detail::acceptor(*c.ctx, c.fd, c.accept_capacity);
}

endpoint socket::local_endpoint() const {
  if (!is_open()) throw socket_closed_error("local_endpoint");
  endpoint ep;
  socklen_t len = endpoint::capacity();
  if (::getsockname(core_->fd, ep.data(), &len) != 0) throw_errno("ringsock: getsockname");
  ep.resize(len);
  return ep;
}

endpoint socket::remote_endpoint() const {
  if (!is_open()) throw socket_closed_error("remote_endpoint");
  endpoint ep;
  socklen_t len = endpoint::capacity();
  if (::getpeername(core_->fd, ep.data(), &len) != 0) throw_errno("ringsock: getpeername");
  ep.resize(len);
  return ep;
}

void socket::shutdown(shutdown_how how) {
  if (!is_open()) throw socket_closed_error("shutdown");
  // A hand-off runtime's fed listener shares the accepting thread's socket.
  if (core_->listener && core_->listener->fed())
    throw std::logic_error("ringsock: shutdown of a hand-off listener would stop every thread's; "
                           "close it instead");
  if (::shutdown(core_->fd, static_cast<int>(how)) != 0) throw_errno("ringsock: shutdown");
}

void socket::set_option(int level, int name, int value) {
  if (!is_open()) throw socket_closed_error("set_option");
  if (::setsockopt(core_->fd, level, name, &value, sizeof value) != 0) throw_errno("ringsock: setsockopt");
}

int socket::get_option(int level, int name) const {
  if (!is_open()) throw socket_closed_error("get_option");
  int value = 0;
  socklen_t len = sizeof value;
  if (::getsockopt(core_->fd, level, name, &value, &len) != 0) throw_errno("ringsock: getsockopt");
  return value;
}

void socket::set_no_delay(bool on) { set_option(IPPROTO_TCP, TCP_NODELAY, on); }
bool socket::no_delay() const { return get_option(IPPROTO_TCP, TCP_NODELAY) != 0; }
void socket::set_reuse_address(bool on) { set_option(SOL_SOCKET, SO_REUSEADDR, on); }
void socket::set_reuse_port(bool on) { set_option(SOL_SOCKET, SO_REUSEPORT, on); }
void socket::set_keep_alive(bool on) { set_option(SOL_SOCKET, SO_KEEPALIVE, on); }
bool socket::keep_alive() const { return get_option(SOL_SOCKET, SO_KEEPALIVE) != 0; }
void socket::set_receive_buffer_size(int bytes) { set_option(SOL_SOCKET, SO_RCVBUF, bytes); }
int socket::receive_buffer_size() const { return get_option(SOL_SOCKET, SO_RCVBUF); }
void socket::set_send_buffer_size(int bytes) { set_option(SOL_SOCKET, SO_SNDBUF, bytes); }
int socket::send_buffer_size() const { return get_option(SOL_SOCKET, SO_SNDBUF); }

void socket::set_accept_queue_capacity(std::size_t n) {
  if (!is_open()) throw socket_closed_error("set_accept_queue_capacity");
  if (n > max_accept_queue)
    throw std::invalid_argument("ringsock: set_accept_queue_capacity: more than max_accept_queue");
  core_->accept_capacity = static_cast<std::uint32_t>(n);
  if (core_->listener) core_->listener->set_capacity(n);
}

std::size_t socket::accept_queue_size() const noexcept {
  return is_listening() ? core_->listener->queued() : 0;
}

std::size_t socket::queued_bytes() const noexcept {
  if (!is_open()) return 0;
  return core_->rx.queued_bytes();
}

std::size_t socket::available() const {
  if (!is_open()) throw socket_closed_error("available");
  int kernel = 0;
  if (::ioctl(core_->fd, FIONREAD, &kernel) != 0) throw_errno("ringsock: ioctl(FIONREAD)");
  return queued_bytes() + static_cast<std::size_t>(kernel);
}

namespace detail {

void close_core(socket_core& c) noexcept {
  // From here on no round of a pending operation may use the number (it may be reused).
  const int fd = std::exchange(c.fd, -1);
  if (acceptor* a = std::exchange(c.listener, nullptr)) {
    a->close();  // owns fd now; frees it after its last CQE
    return;
  }
  io_context& ctx = *c.ctx;
  if (c.rx.has_data()) {
    // Bytes nobody read: close(2) would reset the connection if they were still in the
    // kernel's queue; they are in ours, so say it explicitly (zero linger: RST).
    const ::linger abort{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  }
  close_receiver(c);
  if (c.armed == 0 || access::draining(ctx)) {
    ::close(fd);  // nothing in the kernel refers to it (or everything is being cancelled)
    return;
  }
  // A request in flight holds its own reference to the file, so closing the number alone would
  // not stop it. Cancel, then close, both through the ring and in this order: the cancel
  // matches before the number can be reused. When the receiver's multishot is all there is (a
  // used stream socket, nothing else pending) it is cancelled by its user_data, which the
  // kernel finds by hash; a cancel by fd scans every armed poll of the ring (W6's profile:
  // io_poll_cancel and io_cancel_req_match, about 2.5 % of the server's time).
  if (c.armed == 1 && c.rx.in_kernel && !c.rx.direct)
    access::ring_of(ctx).prep_cancel(&c.rx.op);
  else
    access::ring_of(ctx).prep_cancel_fd(fd);
  access::ring_of(ctx).prep_close(fd);
  if (!access::in_loop(ctx)) access::ring_of(ctx).flush();  // nobody would submit it until the next run
}

void free_core(socket_core* c) noexcept {
  if (c->ctx && !c->ctx->running_in_this_thread()) {
    access::retire_core(*c->ctx, c);  // the live-core list belongs to the context's thread
    return;
  }
  if (c->ctx) access::unlink_core(*c->ctx, c);
  delete c;
}

}  // namespace detail
}  // namespace ringsock
