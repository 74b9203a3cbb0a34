#include "ringsock/socket.hpp"

#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
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
  core_ = ctx.make_core(fd);
}

socket::socket(io_context& ctx, int fd) noexcept : core_(ctx.make_core(fd)) {}

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
    c->owned = false;
    detail::free_core_if_unused(c);  // else the last operation armed on it frees it
  }
}

io_context& socket::context() const {
  if (!core_ || !core_->ctx) throw socket_closed_error("context");
  return *core_->ctx;
}

io_context& socket::checked(const char* op) {
  if (!is_open()) throw socket_closed_error(op);
  return *core_->ctx;
}

detail::acceptor& socket::checked_acceptor(const char* op) {
  if (!is_open()) throw socket_closed_error(op);
  if (!core_->listener) throw not_listening_error(op);
  return *core_->listener;
}

void socket::close() noexcept {
  if (!is_open()) return;
  detail::socket_core& c = *core_;
  // From here on no round of a pending operation may use the number (it may be reused).
  const int fd = std::exchange(c.fd, -1);
  if (detail::acceptor* a = std::exchange(c.listener, nullptr)) {
    a->close();  // owns fd now; frees it after its last CQE
    return;
  }
  io_context& ctx = *c.ctx;
  if (c.ops == 0 || ctx.draining()) {
    ::close(fd);  // nothing in the kernel refers to it (or everything is being cancelled)
    return;
  }
  // A request in flight holds its own reference to the file, so closing the number alone would
  // not stop it. Cancel by fd, then close, both through the ring and in this order: the cancel
  // matches before the number can be reused.
  ctx.ring().prep_cancel_fd(fd);
  ctx.ring().prep_close(fd);
  if (!ctx.in_loop()) ctx.ring().flush();  // nobody would submit it until the next run
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
  core_->accept_capacity = n;
  if (core_->listener) core_->listener->set_capacity(n);
}

std::size_t socket::accept_queue_size() const noexcept {
  return is_listening() ? core_->listener->queued() : 0;
}

// ---- plain-form awaiters that live out of line ----

namespace detail {

accept_awaiter::~accept_awaiter() {
  // Only when the frame dies unfinished (context destruction): leave the listener's queue.
  if (req_.source_) static_cast<acceptor*>(req_.source_)->forget(req_);
}

bool accept_awaiter::await_ready() {
  req_.done_ = &resume_waiter;
  req_.buf_ = {};
  req_.report_errors_ = false;
  // Looked up again: the listener may have been closed since accept_async() made this awaiter.
  acceptor_ = &sock_->checked_acceptor("accept_async");
  return acceptor_->start(req_, opts_);
}

socket accept_awaiter::await_resume() {
  int fd = result_or_throw("ringsock: accept");
  return socket(*req_.ctx_, fd);  // not sock_: the listener may be gone by now
}

void free_core_if_unused(socket_core* c) noexcept {
  if (c->owned || c->ops != 0) return;
  if (c->ctx && !c->ctx->running_in_this_thread()) {
    c->ctx->retire_core(c);  // the live-core list belongs to the context's thread
    return;
  }
  if (c->ctx) c->ctx->unlink_core(c);
  delete c;
}

void prep_send_rest(io_uring_sqe* sqe, int fd, io_request& r) noexcept {
  io_uring_prep_send(sqe, fd, r.buf_.data() + r.done_bytes_, r.buf_.size() - r.done_bytes_,
                     MSG_NOSIGNAL);
}

bool send_all_again(io_request* r) noexcept {
  if (r->res_ < 0) return false;  // done_bytes_ keeps what went out before the error
  r->done_bytes_ += static_cast<std::size_t>(r->res_);
  if (r->done_bytes_ >= r->buf_.size() || r->res_ == 0) {
    r->res_ = static_cast<int>(r->done_bytes_);
    return false;
  }
  const int fd = r->core_->fd;
  if (fd < 0 || r->cancelled_) {
    r->res_ = -ECANCELED;  // closed meanwhile: never send on a number that may be reused
    return false;
  }
  r->ctx_->submit_round(*r, [r, fd](io_uring_sqe* sqe) { prep_send_rest(sqe, fd, *r); });
  return true;
}

bool send_all_awaiter::await_ready() {
  req_.done_bytes_ = 0;
  req_.again_ = &send_all_again;
  if (req_.buf_.empty()) {
    req_.res_ = 0;
    sock_->context().count_inline();
    return true;
  }
  arm([this](io_uring_sqe* sqe, int fd) { prep_send_rest(sqe, fd, req_); });
  return false;
}

send_to_awaiter::send_to_awaiter(socket& s, std::span<const std::byte> buf, const endpoint& to,
                                 io_options o) noexcept
    : plain_awaiter(s, std::move(o)),
      to_(to),
      iov_{const_cast<std::byte*>(buf.data()), buf.size()} {}

bool send_to_awaiter::await_ready() {
  msg_.msg_name = to_.data();
  msg_.msg_namelen = to_.size();
  msg_.msg_iov = &iov_;
  msg_.msg_iovlen = 1;
  arm([this](io_uring_sqe* sqe, int fd) { io_uring_prep_sendmsg(sqe, fd, &msg_, MSG_NOSIGNAL); });
  return false;
}

receive_from_awaiter::receive_from_awaiter(socket& s, std::span<std::byte> buf, endpoint& from,
                                           io_options o) noexcept
    : plain_awaiter(s, std::move(o)), from_(&from), iov_{buf.data(), buf.size()} {}

bool receive_from_awaiter::await_ready() {
  msg_.msg_name = from_->data();
  msg_.msg_namelen = endpoint::capacity();
  msg_.msg_iov = &iov_;
  msg_.msg_iovlen = 1;
  arm([this](io_uring_sqe* sqe, int fd) { io_uring_prep_recvmsg(sqe, fd, &msg_, 0); });
  return false;
}

std::size_t receive_from_awaiter::await_resume() {
  auto n = static_cast<std::size_t>(result_or_throw("ringsock: receive_from"));
  from_->resize(msg_.msg_namelen);
  return n;
}

}  // namespace detail
}  // namespace ringsock
