// The unix socket of the vhost-user channel: listen/accept/connect, recvmsg/sendmsg carrying fds
// (SCM_RIGHTS, which Node's net module cannot), and Poller, a uv_poll_t that tells JS when an fd is
// readable so that all of it runs in Node's event loop. Fds cross to JS as plain numbers; the
// TypeScript side owns and closes them.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "napi/addon_data.h"

namespace vhost {

namespace {

constexpr int kMaxRecvFds = 16;  // more than any message may carry: truncation shows as MSG_CTRUNC

sockaddr_un UnixAddress(Napi::Env env, const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    ThrowError(env, "ENAMETOOLONG",
               "socket path must be 1.." + std::to_string(sizeof(addr.sun_path) - 1) + " bytes: " + path);
  memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

// listen(path, mode, backlog) -> fd (non-blocking)
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  mode_t mode = info[1].As<Napi::Number>().Uint32Value();
  int backlog = info[2].As<Napi::Number>().Int32Value();
  sockaddr_un addr = UnixAddress(env, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket", "creating a unix socket");
  // Bind under a restrictive umask so the socket never exists with wider permissions than asked.
  mode_t old = umask(0777 & ~mode);
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int e = errno;
  umask(old);
  if (rc == 0 && chmod(path.c_str(), mode) != 0) rc = -1, e = errno;
  if (rc == 0 && listen(fd, backlog) != 0) rc = -1, e = errno;
  if (rc != 0) {
    close(fd);
    ThrowErrno(env, e, "bind", "listening on " + path);
  }
  return Napi::Number::New(env, fd);
}

// connect(path) -> fd (non-blocking)
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  sockaddr_un addr = UnixAddress(env, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket", "creating a unix socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    close(fd);
    ThrowErrno(env, e, "connect", "connecting to " + path);
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return Napi::Number::New(env, fd);
}

// accept(listenFd) -> fd, or -1 when no connection is pending
Napi::Value Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int lfd = info[0].As<Napi::Number>().Int32Value();
  int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR)
      return Napi::Number::New(env, -1);
    ThrowErrno(env, errno, "accept", "accepting a connection");
  }
  return Napi::Number::New(env, fd);
}

// recvmsg(fd, maxBytes) -> {bytes: Buffer, fds: number[], truncated: boolean} | null (would block).
// End of stream is an empty `bytes`.
Napi::Value RecvMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t max = info[1].As<Napi::Number>().Uint32Value();
  std::vector<uint8_t> buf(max > 0 ? max : 1);
  iovec iov{buf.data(), max};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxRecvFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowErrno(env, errno, "recvmsg", "reading from the vhost-user socket");
  }
  Napi::Array fds = Napi::Array::New(env);
  uint32_t nfds = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int got;
      memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
      fds.Set(nfds++, got);
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, buf.data(), static_cast<size_t>(n)));
  out.Set("fds", fds);
  out.Set("truncated", (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0);
  return out;
}

// sendmsg(fd, bytes, fds) -> bytes written (may be short), or -1 when it would block
Napi::Value SendMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> data = info[1].As<Napi::Buffer<uint8_t>>();
  Napi::Array fds = info[2].As<Napi::Array>();
  uint32_t nfds = fds.Length();
  if (nfds > kMaxRecvFds) ThrowError(env, "EINVAL", "too many fds for one message");
  iovec iov{data.Data(), data.Length()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxRecvFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    for (uint32_t i = 0; i < nfds; i++) {
      int v = fds.Get(i).As<Napi::Number>().Int32Value();
      memcpy(CMSG_DATA(c) + i * sizeof(int), &v, sizeof v);
    }
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    ThrowErrno(env, errno, "sendmsg", "writing to the vhost-user socket");
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// Watches an fd in Node's event loop and calls back (status, ready, disconnected): ready is readable,
// or writable for a poller made to watch writes.
// The handle lives in its own allocation because uv_close completes after the wrap may be gone;
// an async cleanup hook closes it if the environment ends first (Worker.terminate, vitest threads).
class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {InstanceMethod<&Poller::Stop>("stop"), InstanceMethod<&Poller::SetRef>("setRef")});
  }

  explicit Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    int fd = info[0].As<Napi::Number>().Int32Value();
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "vhost-user:poll");
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new Handle();
    handle_->owner = this;
    int rc = uv_poll_init(loop, &handle_->poll, fd);
    if (rc != 0) {
      delete handle_;
      handle_ = nullptr;
      ThrowError(env, uv_err_name(rc), std::string("watching fd: ") + uv_strerror(rc));
    }
    handle_->poll.data = handle_;
    // A third argument true: watch for room to write instead (a pipe a transfer writes).
    const int ready = info.Length() > 2 && info[2].ToBoolean().Value() ? UV_WRITABLE : UV_READABLE;
    uv_poll_start(&handle_->poll, ready | UV_DISCONNECT, &Poller::OnPoll);
    napi_add_async_cleanup_hook(env, &Poller::OnEnvCleanup, handle_, &handle_->hook);
    Ref();  // stays alive while it watches
  }

  ~Poller() override { Close(); }

 private:
  struct Handle {
    uv_poll_t poll;
    Poller* owner;
    napi_async_cleanup_hook_handle hook = nullptr;
  };

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_) {
      Close();
      Unref();
    }
    return info.Env().Undefined();
  }

  // setRef(false): the watch no longer keeps the event loop alive (its callback still runs); true: again.
  Napi::Value SetRef(const Napi::CallbackInfo& info) {
    if (handle_) {
      auto* h = reinterpret_cast<uv_handle_t*>(&handle_->poll);
      if (info[0].ToBoolean().Value()) uv_ref(h);
      else uv_unref(h);
    }
    return info.Env().Undefined();
  }

  void Close() {
    if (!handle_) return;
    handle_->owner = nullptr;
    uv_poll_stop(&handle_->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_->poll), &Poller::OnClosed);
    handle_ = nullptr;
  }

  static void OnClosed(uv_handle_t* h) {
    Handle* handle = static_cast<Handle*>(h->data);
    if (handle->hook) napi_remove_async_cleanup_hook(handle->hook);
    delete handle;
  }

  static void OnEnvCleanup(napi_async_cleanup_hook_handle, void* arg) {
    Handle* handle = static_cast<Handle*>(arg);
    if (handle->owner) {
      handle->owner->Close();  // uv_close; OnClosed removes the hook
    }
    // else: already closing; OnClosed will remove the hook.
  }

  static void OnPoll(uv_poll_t* p, int status, int events) {
    Handle* handle = static_cast<Handle*>(p->data);
    Poller* self = handle->owner;
    if (!self) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    try {
      // MakeCallback, not Call: Node then runs the microtasks and nextTicks the callback queued.
      self->callback_.MakeCallback(
          self->Value(),
          {Napi::Number::New(env, status), Napi::Boolean::New(env, (events & (UV_READABLE | UV_WRITABLE)) != 0),
           Napi::Boolean::New(env, (events & UV_DISCONNECT) != 0)},
          *self->context_);
    } catch (const Napi::Error& e) {
      // Surfaces as 'uncaughtException', as for any callback. Empty while the environment is being
      // torn down (Worker.terminate): then there is no one to tell.
      Napi::Value v = e.Value();
      if (!v.IsEmpty()) napi_fatal_exception(env, v);
    }
  }

  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> context_;
  Handle* handle_ = nullptr;
};

Napi::Value CloseFdJs(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("listen", Napi::Function::New(env, Listen));
  exports.Set("connect", Napi::Function::New(env, Connect));
  exports.Set("accept", Napi::Function::New(env, Accept));
  exports.Set("recvmsg", Napi::Function::New(env, RecvMsg));
  exports.Set("sendmsg", Napi::Function::New(env, SendMsg));
  exports.Set("close", Napi::Function::New(env, CloseFdJs));
  exports.Set("Poller", Poller::Define(env));
}

}  // namespace vhost
