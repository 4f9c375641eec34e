// vhostKernel: the kernel's vhost ioctls for JS (lib/frontend/vhost_kernel_transport.ts), one thin
// function each, and the two tap calls a vhost-net back-end needs. Policy (which features, which
// addresses, the user-facing wording of errors) stays in TypeScript; a failed ioctl surfaces as
// VhostUserError with the errno name as code and the ioctl as op.
// The kernel reads rings and buffers at this process's virtual addresses: the memory table maps
// guest-physical ranges to them, and ring addresses are given as them directly.
#include <fcntl.h>
#include <linux/ioctl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "napi/addon_data.h"
#include "net/ports/tap.h"

namespace vhost {

namespace {

// The uapi of include/uapi/linux/vhost.h and vhost_types.h, declared here: the system header pulls
// in linux/virtio_ring.h, which is C that does not compile as C++.
struct VringState {
  uint32_t index, num;
};
struct VringFile {
  uint32_t index;
  int32_t fd;
};
struct VringAddr {
  uint32_t index, flags;
  uint64_t desc_user_addr, used_user_addr, avail_user_addr, log_guest_addr;
};
struct MemoryRegion {
  uint64_t guest_phys_addr, memory_size, userspace_addr, flags_padding;
};
struct MemoryTable {
  uint32_t nregions, padding;
  // MemoryRegion regions[nregions] follow.
};
static_assert(sizeof(VringAddr) == 40 && sizeof(MemoryRegion) == 32 && sizeof(MemoryTable) == 8, "vhost uapi layout");

constexpr unsigned kVhost = 0xAF;
constexpr unsigned long VHOST_GET_FEATURES = _IOR(kVhost, 0x00, uint64_t);
constexpr unsigned long VHOST_SET_FEATURES = _IOW(kVhost, 0x00, uint64_t);
constexpr unsigned long VHOST_SET_OWNER = _IO(kVhost, 0x01);
constexpr unsigned long VHOST_SET_MEM_TABLE = _IOW(kVhost, 0x03, MemoryTable);
constexpr unsigned long VHOST_SET_VRING_NUM = _IOW(kVhost, 0x10, VringState);
constexpr unsigned long VHOST_SET_VRING_ADDR = _IOW(kVhost, 0x11, VringAddr);
constexpr unsigned long VHOST_SET_VRING_BASE = _IOW(kVhost, 0x12, VringState);
constexpr unsigned long VHOST_GET_VRING_BASE = _IOWR(kVhost, 0x12, VringState);
constexpr unsigned long VHOST_SET_VRING_KICK = _IOW(kVhost, 0x20, VringFile);
constexpr unsigned long VHOST_SET_VRING_CALL = _IOW(kVhost, 0x21, VringFile);
constexpr unsigned long VHOST_SET_VRING_ERR = _IOW(kVhost, 0x22, VringFile);
constexpr unsigned long VHOST_SET_VRING_BUSYLOOP_TIMEOUT = _IOW(kVhost, 0x23, VringState);
constexpr unsigned long VHOST_NET_SET_BACKEND = _IOW(kVhost, 0x30, VringFile);

int IntArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) ThrowError(info.Env(), "EINVAL", std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

uint32_t U32Arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) ThrowError(info.Env(), "EINVAL", std::string(what) + " must be a number");
  int64_t v = info[i].As<Napi::Number>().Int64Value();
  if (v < 0 || v > UINT32_MAX) ThrowError(info.Env(), "EINVAL", std::string(what) + " out of range");
  return static_cast<uint32_t>(v);
}

uint64_t U64Arg(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsBigInt()) ThrowError(env, "EINVAL", std::string(what) + " must be a bigint");
  bool lossless = false;
  uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) ThrowError(env, "EINVAL", std::string(what) + " out of range");
  return x;
}

void Check(Napi::Env env, int rc, const char* op) {
  if (rc != 0) ThrowErrno(env, errno, op, op);
}

// open(path): the vhost device, read-write; the caller maps ENOENT/EACCES to advice.
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) ThrowError(env, "EINVAL", "path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "open", "opening " + path);
  return Napi::Number::New(env, fd);
}

Napi::Value SetOwner(const Napi::CallbackInfo& info) {
  Check(info.Env(), ioctl(IntArg(info, 0, "fd"), VHOST_SET_OWNER), "VHOST_SET_OWNER");
  return info.Env().Undefined();
}

Napi::Value GetFeatures(const Napi::CallbackInfo& info) {
  uint64_t features = 0;
  Check(info.Env(), ioctl(IntArg(info, 0, "fd"), VHOST_GET_FEATURES, &features), "VHOST_GET_FEATURES");
  return Napi::BigInt::New(info.Env(), features);
}

Napi::Value SetFeatures(const Napi::CallbackInfo& info) {
  uint64_t features = U64Arg(info.Env(), info[1], "features");
  Check(info.Env(), ioctl(IntArg(info, 0, "fd"), VHOST_SET_FEATURES, &features), "VHOST_SET_FEATURES");
  return info.Env().Undefined();
}

// setMemTable(fd, [{ guestPhysAddr, size, userAddr }]): every region at once (the kernel replaces the table).
Napi::Value SetMemTable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = IntArg(info, 0, "fd");
  if (!info[1].IsArray()) ThrowError(env, "EINVAL", "regions must be an array");
  Napi::Array regions = info[1].As<Napi::Array>();
  uint32_t n = regions.Length();
  if (n > 509) ThrowError(env, "EINVAL", "at most 509 memory regions");
  std::vector<uint64_t> words((sizeof(MemoryTable) + n * sizeof(MemoryRegion)) / sizeof(uint64_t));
  auto* table = reinterpret_cast<MemoryTable*>(words.data());
  auto* out_regions = reinterpret_cast<MemoryRegion*>(table + 1);
  table->nregions = n;
  for (uint32_t i = 0; i < n; i++) {
    if (!regions.Get(i).IsObject()) ThrowError(env, "EINVAL", "a region must be an object");
    Napi::Object r = regions.Get(i).As<Napi::Object>();
    MemoryRegion& out = out_regions[i];
    out.guest_phys_addr = U64Arg(env, r.Get("guestPhysAddr"), "guestPhysAddr");
    out.memory_size = U64Arg(env, r.Get("size"), "size");
    out.userspace_addr = U64Arg(env, r.Get("userAddr"), "userAddr");
  }
  Check(env, ioctl(fd, VHOST_SET_MEM_TABLE, table), "VHOST_SET_MEM_TABLE");
  return env.Undefined();
}

// The vhost_vring_state ioctls: (fd, index, num).
template <unsigned long kRequest>
Napi::Value StateIoctl(const Napi::CallbackInfo& info, const char* op) {
  VringState s{U32Arg(info, 1, "index"), U32Arg(info, 2, "num")};
  Check(info.Env(), ioctl(IntArg(info, 0, "fd"), kRequest, &s), op);
  return info.Env().Undefined();
}

Napi::Value SetVringNum(const Napi::CallbackInfo& info) {
  return StateIoctl<VHOST_SET_VRING_NUM>(info, "VHOST_SET_VRING_NUM");
}
Napi::Value SetVringBase(const Napi::CallbackInfo& info) {
  return StateIoctl<VHOST_SET_VRING_BASE>(info, "VHOST_SET_VRING_BASE");
}
Napi::Value SetBusyloopTimeout(const Napi::CallbackInfo& info) {
  return StateIoctl<VHOST_SET_VRING_BUSYLOOP_TIMEOUT>(info, "VHOST_SET_VRING_BUSYLOOP_TIMEOUT");
}

Napi::Value GetVringBase(const Napi::CallbackInfo& info) {
  VringState s{U32Arg(info, 1, "index"), 0};
  Check(info.Env(), ioctl(IntArg(info, 0, "fd"), VHOST_GET_VRING_BASE, &s), "VHOST_GET_VRING_BASE");
  return Napi::Number::New(info.Env(), s.num);
}

// setVringAddr(fd, index, flags, desc, used, avail, log): addresses in this process (log: guest-physical).
Napi::Value SetVringAddr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  VringAddr a{};
  a.index = U32Arg(info, 1, "index");
  a.flags = U32Arg(info, 2, "flags");
  a.desc_user_addr = U64Arg(env, info[3], "desc");
  a.used_user_addr = U64Arg(env, info[4], "used");
  a.avail_user_addr = U64Arg(env, info[5], "avail");
  a.log_guest_addr = U64Arg(env, info[6], "log");
  Check(env, ioctl(IntArg(info, 0, "fd"), VHOST_SET_VRING_ADDR, &a), "VHOST_SET_VRING_ADDR");
  return env.Undefined();
}

// The vhost_vring_file ioctls: (fd, index, file); the kernel takes its own reference to `file`.
template <unsigned long kRequest>
Napi::Value FileIoctl(const Napi::CallbackInfo& info, const char* op) {
  VringFile f{U32Arg(info, 1, "index"), IntArg(info, 2, "file descriptor")};
  Check(info.Env(), ioctl(IntArg(info, 0, "fd"), kRequest, &f), op);
  return info.Env().Undefined();
}

Napi::Value SetVringKick(const Napi::CallbackInfo& info) {
  return FileIoctl<VHOST_SET_VRING_KICK>(info, "VHOST_SET_VRING_KICK");
}
Napi::Value SetVringCall(const Napi::CallbackInfo& info) {
  return FileIoctl<VHOST_SET_VRING_CALL>(info, "VHOST_SET_VRING_CALL");
}
Napi::Value SetVringErr(const Napi::CallbackInfo& info) {
  return FileIoctl<VHOST_SET_VRING_ERR>(info, "VHOST_SET_VRING_ERR");
}
Napi::Value NetSetBackend(const Napi::CallbackInfo& info) {
  return FileIoctl<VHOST_NET_SET_BACKEND>(info, "VHOST_NET_SET_BACKEND");
}

// tapOpenQueue(name, hdrLen): one queue of a multiqueue tap with a vnet header, created if absent.
Napi::Value TapOpenQueue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) ThrowError(env, "EINVAL", "tap name must be a string");
  int err_no = 0;
  std::string err;
  int fd = TapPort::OpenQueue(info[0].As<Napi::String>().Utf8Value(), IntArg(info, 1, "hdrLen"), &err_no, &err);
  if (fd < 0) {
    const char* code = strerrorname_np(err_no);
    ThrowError(env, code ? code : "EUNKNOWN", err, err_no, "tapOpenQueue");
  }
  return Napi::Number::New(env, fd);
}

// tapConfigure(fd, name, features): the header length and the offloads the features decide.
Napi::Value TapConfigure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[1].IsString()) ThrowError(env, "EINVAL", "tap name must be a string");
  std::string err;
  int rc = TapPort::ConfigureQueue(IntArg(info, 0, "fd"), info[1].As<Napi::String>().Utf8Value(),
                                   U64Arg(env, info[2], "features"), &err);
  if (rc != 0) {
    const char* code = strerrorname_np(rc);
    ThrowError(env, code ? code : "EUNKNOWN", err, rc, "tapConfigure");
  }
  return env.Undefined();
}

}  // namespace

void InitVhostKernel(Napi::Env env, Napi::Object exports) {
  Napi::Object k = Napi::Object::New(env);
  k.Set("open", Napi::Function::New(env, Open));
  k.Set("setOwner", Napi::Function::New(env, SetOwner));
  k.Set("getFeatures", Napi::Function::New(env, GetFeatures));
  k.Set("setFeatures", Napi::Function::New(env, SetFeatures));
  k.Set("setMemTable", Napi::Function::New(env, SetMemTable));
  k.Set("setVringNum", Napi::Function::New(env, SetVringNum));
  k.Set("setVringBase", Napi::Function::New(env, SetVringBase));
  k.Set("getVringBase", Napi::Function::New(env, GetVringBase));
  k.Set("setVringAddr", Napi::Function::New(env, SetVringAddr));
  k.Set("setVringKick", Napi::Function::New(env, SetVringKick));
  k.Set("setVringCall", Napi::Function::New(env, SetVringCall));
  k.Set("setVringErr", Napi::Function::New(env, SetVringErr));
  k.Set("setBusyloopTimeout", Napi::Function::New(env, SetBusyloopTimeout));
  k.Set("netSetBackend", Napi::Function::New(env, NetSetBackend));
  k.Set("tapOpenQueue", Napi::Function::New(env, TapOpenQueue));
  k.Set("tapConfigure", Napi::Function::New(env, TapConfigure));
  exports.Set("vhostKernel", k);
}

}  // namespace vhost
