// The few OS calls the TypeScript side needs besides the socket: memfd and eventfd for our own
// front-end (guest memory and notifications), a non-blocking pipe with its reads and writes (the
// DEVICE_STATE transfer, both ends), and Mapping, an mmap exposed as an ArrayBuffer.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "napi/addon_data.h"

namespace vhost {

namespace {

// memfdCreate(name, size, seal = true) -> fd, sized, and sealed against shrinking unless told not
// to (tests of a front-end that shrinks its memory under the back-end).
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>();
  int64_t size = info[1].As<Napi::Number>().Int64Value();
  bool seal = info.Length() < 3 || info[2].ToBoolean().Value();
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) ThrowErrno(env, errno, "memfd_create", "creating guest memory");
  if (ftruncate(fd, size) != 0 || (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0)) {
    int e = errno;
    close(fd);
    ThrowErrno(env, e, "ftruncate", "sizing guest memory");
  }
  return Napi::Number::New(env, fd);
}

// ftruncate(fd, size): resizes a file (a hostile front-end shrinking guest memory, in tests)
Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int64_t size = info[1].As<Napi::Number>().Int64Value();
  if (ftruncate(fd, size) != 0) ThrowErrno(info.Env(), errno, "ftruncate", "resizing a file");
  return info.Env().Undefined();
}

// setBlocking(fd, blocking): sets or clears O_NONBLOCK (on the file description: every process
// holding it sees the change; tests use it to play a hostile front-end)
Napi::Value SetBlocking(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int flags = fcntl(fd, F_GETFL);
  flags = info[1].ToBoolean().Value() ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK);
  if (fcntl(fd, F_SETFL, flags) != 0) ThrowErrno(info.Env(), errno, "fcntl", "setting O_NONBLOCK");
  return info.Env().Undefined();
}

// eventfd() -> fd (non-blocking)
Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), errno, "eventfd", "creating an eventfd");
  return Napi::Number::New(info.Env(), fd);
}

// eventfdRead(fd) -> count since the last read (0 if none)
Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint64_t v = 0;
  if (read(fd, &v, sizeof v) != sizeof v) v = 0;
  return Napi::Number::New(info.Env(), static_cast<double>(v));
}

// eventfdWrite(fd, value = 1n): adds value to the counter (a signal, or a hostile test's overflow)
Napi::Value EventfdWrite(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool lossless = true;
  uint64_t one = info.Length() > 1 ? info[1].As<Napi::BigInt>().Uint64Value(&lossless) : 1;
  if (write(fd, &one, sizeof one) != sizeof one && errno != EAGAIN)
    ThrowErrno(info.Env(), errno, "write", "signalling an eventfd");
  return info.Env().Undefined();
}

// pipe() -> [read end, write end], both non-blocking: the channel of a DEVICE_STATE transfer (our
// front-end makes it; Node has no pipe(2)).
Napi::Value PipeCreate(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) ThrowErrno(info.Env(), errno, "pipe2", "creating a pipe");
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, fds[0]);
  out.Set(1u, fds[1]);
  return out;
}

// readFd(fd, maxBytes) -> the bytes read (empty at end of file), or null when none are there yet
Napi::Value ReadFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t max = info[1].As<Napi::Number>().Uint32Value();
  std::vector<uint8_t> buf(max);
  ssize_t n;
  do n = read(fd, buf.data(), buf.size());
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowErrno(env, errno, "read", "reading a pipe");
  }
  return Napi::Buffer<uint8_t>::Copy(env, buf.data(), static_cast<size_t>(n));
}

// writeFd(fd, bytes, offset) -> bytes written from `offset` on, or -1 when the pipe is full
Napi::Value WriteFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> data = info[1].As<Napi::Buffer<uint8_t>>();
  uint32_t offset = info[2].As<Napi::Number>().Uint32Value();
  if (offset > data.Length()) ThrowError(env, "EINVAL", "writeFd: offset past the end");
  ssize_t n;
  do n = write(fd, data.Data() + offset, data.Length() - offset);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    ThrowErrno(env, errno, "write", "writing a pipe");
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// memoryFence(): a full barrier. JS has none for memory shared with another process's thread, and
// a driver must order its index store before its load of the device's event index.
Napi::Value MemoryFence(const Napi::CallbackInfo& info) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return info.Env().Undefined();
}

// new Mapping(fd, size): a shared mapping of the fd, as `buffer` (at `address`); unmap() releases it at once
// (the buffer is detached first so that JS cannot touch unmapped memory). The garbage collector
// unmaps it otherwise.
class Mapping : public Napi::ObjectWrap<Mapping> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Mapping",
                       {InstanceMethod<&Mapping::Unmap>("unmap"), InstanceAccessor<&Mapping::Buffer>("buffer"),
                        InstanceAccessor<&Mapping::Address>("address")});
  }

  explicit Mapping(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Mapping>(info) {
    Napi::Env env = info.Env();
    int fd = info[0].As<Napi::Number>().Int32Value();
    int64_t size = info[1].As<Napi::Number>().Int64Value();
    if (size <= 0) ThrowError(env, "EINVAL", "mapping size must be positive");
    void* p = mmap(nullptr, static_cast<size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) ThrowErrno(env, errno, "mmap", "mapping guest memory");
    state_ = std::make_shared<State>(State{p, static_cast<size_t>(size)});
    auto* hint = new std::shared_ptr<State>(state_);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
        env, p, static_cast<size_t>(size),
        [](Napi::Env, void*, std::shared_ptr<State>* h) {
          (*h)->Release();
          delete h;
        },
        hint);
    buffer_ = Napi::Persistent(ab);
  }

 private:
  struct State {
    void* addr;
    size_t len;
    void Release() {
      if (addr) munmap(addr, len);
      addr = nullptr;
    }
  };

  Napi::Value Buffer(const Napi::CallbackInfo& info) {
    if (buffer_.IsEmpty()) return info.Env().Undefined();
    return buffer_.Value();
  }

  // Where the mapping lies in this process: the kernel's vhost reads guest memory at these addresses.
  Napi::Value Address(const Napi::CallbackInfo& info) {
    return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(state_->addr)));
  }

  Napi::Value Unmap(const Napi::CallbackInfo& info) {
    if (!buffer_.IsEmpty()) {
      Napi::ArrayBuffer ab = buffer_.Value();
      if (!ab.IsDetached()) ab.Detach();
      buffer_.Reset();
    }
    state_->Release();
    return info.Env().Undefined();
  }

  std::shared_ptr<State> state_;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
};

}  // namespace

void InitOs(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate));
  exports.Set("ftruncate", Napi::Function::New(env, Ftruncate));
  exports.Set("setBlocking", Napi::Function::New(env, SetBlocking));
  exports.Set("eventfd", Napi::Function::New(env, EventfdCreate));
  exports.Set("eventfdRead", Napi::Function::New(env, EventfdRead));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventfdWrite));
  exports.Set("pipe", Napi::Function::New(env, PipeCreate));
  exports.Set("readFd", Napi::Function::New(env, ReadFd));
  exports.Set("writeFd", Napi::Function::New(env, WriteFd));
  exports.Set("memoryFence", Napi::Function::New(env, MemoryFence));
  exports.Set("Mapping", Mapping::Define(env));
}

}  // namespace vhost
