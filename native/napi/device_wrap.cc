// NetDevice exposed to JS. TypeScript has already validated every message; this layer converts
// plain values, calls the device, and turns a non-zero result into a VhostUserError. The counters
// live in a JS-owned ArrayBuffer the worker writes into, so reading stats costs no native call.
#include <string.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "napi/addon_data.h"
#include "net/frame_rings.h"
#include "net/net_device.h"
#include "net/ports/registry.h"

namespace vhost {

namespace {

uint64_t ToU64(Napi::Env env, Napi::Value v, const char* what) {
  bool lossless = false;
  uint64_t out = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) ThrowError(env, "EINVAL", std::string(what) + " does not fit in 64 bits");
  return out;
}

constexpr double kMaxSafeInteger = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER

// A port's options object -> plain values: strings stay strings, integral numbers become int64.
// lib/net/ports has checked them; anything else is a caller that bypassed it.
PortOptions ToPortOptions(Napi::Env env, Napi::Value v) {
  PortOptions out;
  if (!v.IsObject()) return out;
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string key = keys.Get(i).As<Napi::String>();
    Napi::Value value = o.Get(key);
    double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : NAN;
    if (value.IsString()) {
      out.Set(key, value.As<Napi::String>().Utf8Value());
    } else if (std::trunc(number) == number && std::fabs(number) <= kMaxSafeInteger) {  // false for NaN
      // Within JS's safe integers, so the conversion to int64 is exact and defined.
      out.Set(key, static_cast<int64_t>(number));
    } else if (!value.IsUndefined()) {
      ThrowError(env, "EINVAL", "port option '" + key + "' must be a string or a safe integer");
    }
  }
  return out;
}

RegionSpec ToRegion(Napi::Env env, Napi::Object o) {
  return RegionSpec{ToU64(env, o.Get("guestPhysAddr"), "guestPhysAddr"), ToU64(env, o.Get("size"), "size"),
                    ToU64(env, o.Get("userAddr"), "userAddr"), ToU64(env, o.Get("mmapOffset"), "mmapOffset")};
}

class NetDeviceWrap : public Napi::ObjectWrap<NetDeviceWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NetDevice",
                       {InstanceMethod<&NetDeviceWrap::SetMemTable>("setMemTable"),
                        InstanceMethod<&NetDeviceWrap::AddMemReg>("addMemReg"),
                        InstanceMethod<&NetDeviceWrap::RemMemReg>("remMemReg"),
                        InstanceMethod<&NetDeviceWrap::SetFeatures>("setFeatures"),
                        InstanceMethod<&NetDeviceWrap::SetPollMicros>("setPollMicros"),
                        InstanceMethod<&NetDeviceWrap::SetVringNum>("setVringNum"),
                        InstanceMethod<&NetDeviceWrap::SetVringBase>("setVringBase"),
                        InstanceMethod<&NetDeviceWrap::SetVringAddr>("setVringAddr"),
                        InstanceMethod<&NetDeviceWrap::SetLogBase>("setLogBase"),
                        InstanceAccessor<&NetDeviceWrap::Logging>("logging"),
                        InstanceMethod<&NetDeviceWrap::GetVringBase>("getVringBase"),
                        InstanceMethod<&NetDeviceWrap::SetVringFd<&NetDevice::SetVringKick>>("setVringKick"),
                        InstanceMethod<&NetDeviceWrap::SetVringFd<&NetDevice::SetVringCall>>("setVringCall"),
                        InstanceMethod<&NetDeviceWrap::SetVringFd<&NetDevice::SetVringErr>>("setVringErr"),
                        InstanceMethod<&NetDeviceWrap::SetVringEnable>("setVringEnable"),
                        InstanceMethod<&NetDeviceWrap::Reset>("reset"),
                        InstanceMethod<&NetDeviceWrap::Close>("close"),
                        InstanceMethod<&NetDeviceWrap::TakeEvents>("takeEvents"),
                        InstanceAccessor<&NetDeviceWrap::Stats>("stats"),
                        InstanceAccessor<&NetDeviceWrap::WorkerNames>("workerNames"),
                        InstanceMethod<&NetDeviceWrap::FrameRingsJs>("frameRings"),
                        InstanceMethod<&NetDeviceWrap::ServeInline>("serveInline"),
                        InstanceAccessor<&NetDeviceWrap::InlineFd>("inlineFd"),
                        InstanceMethod<&NetDeviceWrap::Forward>("forward"),
                        InstanceMethod<&NetDeviceWrap::Announce>("announce"),
                        InstanceMethod<&NetDeviceWrap::SaveState>("saveState"),
                        InstanceMethod<&NetDeviceWrap::LoadState>("loadState"),
                        InstanceAccessor<&NetDeviceWrap::RingsStopped>("ringsStopped")});
  }

  // new NetDevice(queuePairs, portName, portOptions, workers): the registry makes one port per pair.
  explicit NetDeviceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetDeviceWrap>(info) {
    Napi::Env env = info.Env();
    int pairs = info[0].As<Napi::Number>().Int32Value();
    std::string port = info[1].As<Napi::String>();
    int workers = info[3].IsUndefined() ? pairs : info[3].As<Napi::Number>().Int32Value();
    if (pairs < 1 || pairs > NetDevice::kMaxQueuePairs)
      ThrowError(env, "EINVAL", "queue pairs must be 1.." + std::to_string(NetDevice::kMaxQueuePairs));
    // 0: no worker threads, the JS thread serves the device (serveInline).
    if (workers < 0 || workers > pairs) ThrowError(env, "EINVAL", "workers must be 0.." + std::to_string(pairs));
    PortOptions options = ToPortOptions(env, info[2]);
    std::vector<std::unique_ptr<Port>> ports;
    for (int p = 0; p < pairs; p++) {
      PortError err;
      ports.push_back(CreatePort(port, options, &err));
      if (!ports.back()) {
        const char* code = strerrorname_np(err.err_no);
        ThrowError(env, code ? code : "EUNKNOWN", err.message, err.err_no, port.c_str());
      }
    }
    device_ = std::make_unique<NetDevice>(std::move(ports), workers);
    // The buffer keeps its own reference to the counters: JS may hold (or detach) it longer than
    // the device lives, and the worker may write while JS reads.
    auto* hold = new std::shared_ptr<uint64_t[]>(device_->stats());
    stats_ = Napi::Persistent(Napi::ArrayBuffer::New(
        env, hold->get(), device_->stats_bytes(), [](Napi::Env, void*, std::shared_ptr<uint64_t[]>* h) { delete h; },
        hold));
    // Workers must be joined before the environment goes away (Worker.terminate, vitest threads).
    napi_add_env_cleanup_hook(env, &NetDeviceWrap::OnEnvCleanup, device_.get());
    napi_type_tag_object(env, info.This(), &kTypeTag);
  }

  // The device of a JS NetDevice object, or null for any other value.
  static NetDevice* From(Napi::Value v) {
    bool tagged = false;
    if (!v.IsObject() || napi_check_object_type_tag(v.Env(), v, &kTypeTag, &tagged) != napi_ok || !tagged)
      return nullptr;
    return Unwrap(v.As<Napi::Object>())->device_.get();
  }

  // Without close(), the frame buffer keeps its mapping until it is collected (its own reference).
  ~NetDeviceWrap() override { napi_remove_env_cleanup_hook(Env(), &NetDeviceWrap::OnEnvCleanup, device_.get()); }

 private:
  static void OnEnvCleanup(void* arg) { static_cast<NetDevice*>(arg)->Shutdown(); }

  void Check(int rc, const std::string& err, const char* op) {
    if (rc != 0) ThrowErrno(Env(), rc, op, std::string(op) + ": " + err);
  }
  int Queue(const Napi::CallbackInfo& info) { return info[0].As<Napi::Number>().Int32Value(); }

  Napi::Value SetMemTable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array arr = info[0].As<Napi::Array>();
    std::vector<RegionSpec> regions;
    std::vector<int> fds;
    try {
      for (uint32_t i = 0; i < arr.Length(); i++) {
        Napi::Object o = arr.Get(i).As<Napi::Object>();
        fds.push_back(o.Get("fd").As<Napi::Number>().Int32Value());
        regions.push_back(ToRegion(env, o));
      }
    } catch (...) {
      for (int fd : fds) close(fd);  // the fds were handed over: never leak them
      throw;
    }
    std::string err;
    Check(device_->SetMemTable(regions, fds, &err), err, "SET_MEM_TABLE");
    return env.Undefined();
  }

  Napi::Value AddMemReg(const Napi::CallbackInfo& info) {
    Napi::Object o = info[0].As<Napi::Object>();
    int fd = o.Get("fd").As<Napi::Number>().Int32Value();
    RegionSpec r;
    try {
      r = ToRegion(info.Env(), o);
    } catch (...) {
      close(fd);
      throw;
    }
    std::string err;
    Check(device_->AddMemRegion(r, fd, &err), err, "ADD_MEM_REG");
    return info.Env().Undefined();
  }

  Napi::Value RemMemReg(const Napi::CallbackInfo& info) {
    std::string err;
    Check(device_->RemoveMemRegion(ToRegion(info.Env(), info[0].As<Napi::Object>()), &err), err, "REM_MEM_REG");
    return info.Env().Undefined();
  }

  Napi::Value SetFeatures(const Napi::CallbackInfo& info) {
    std::string err;
    Check(device_->SetFeatures(ToU64(info.Env(), info[0], "features"), &err), err, "SET_FEATURES");
    return info.Env().Undefined();
  }

  Napi::Value SetPollMicros(const Napi::CallbackInfo& info) {
    device_->SetPollMicros(info[0].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  }

  Napi::Value SetVringNum(const Napi::CallbackInfo& info) {
    std::string err;
    Check(device_->SetVringNum(Queue(info), info[1].As<Napi::Number>().Uint32Value(), &err), err, "SET_VRING_NUM");
    return info.Env().Undefined();
  }

  Napi::Value SetVringBase(const Napi::CallbackInfo& info) {
    std::string err;
    uint32_t base = info[1].As<Napi::Number>().Uint32Value();
    Check(device_->SetVringBase(Queue(info), base, &err), err, "SET_VRING_BASE");
    return info.Env().Undefined();
  }

  Napi::Value SetVringAddr(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string err;
    // setVringAddr(queue, desc, used, avail, logGpa): logGpa null unless VHOST_VRING_F_LOG.
    const bool log = info.Length() > 4 && !info[4].IsNull() && !info[4].IsUndefined();
    Check(device_->SetVringAddr(Queue(info), ToU64(env, info[1], "desc"), ToU64(env, info[2], "used"),
                                ToU64(env, info[3], "avail"), log, log ? ToU64(env, info[4], "log") : 0, &err),
          err, "SET_VRING_ADDR");
    return env.Undefined();
  }

  // setLogBase(fd, size, offset): SET_LOG_BASE; the fd is consumed.
  Napi::Value SetLogBase(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string err;
    Check(device_->SetLogBase(info[0].As<Napi::Number>().Int32Value(), ToU64(env, info[1], "size"),
                              ToU64(env, info[2], "offset"), &err),
          err, "SET_LOG_BASE");
    return env.Undefined();
  }

  Napi::Value Logging(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), device_->logging()); }

  Napi::Value GetVringBase(const Napi::CallbackInfo& info) {
    std::string err;
    uint32_t base = 0;
    Check(device_->GetVringBase(Queue(info), &base, &err), err, "GET_VRING_BASE");
    return Napi::Number::New(info.Env(), base);
  }

  template <int (VhostDevice::*Set)(int, int, std::string*)>
  Napi::Value SetVringFd(const Napi::CallbackInfo& info) {
    std::string err;
    Check((device_.get()->*Set)(Queue(info), info[1].As<Napi::Number>().Int32Value(), &err), err, "SET_VRING_FD");
    return info.Env().Undefined();
  }

  Napi::Value SetVringEnable(const Napi::CallbackInfo& info) {
    std::string err;
    Check(device_->SetVringEnable(Queue(info), info[1].As<Napi::Boolean>().Value(), &err), err, "SET_VRING_ENABLE");
    return info.Env().Undefined();
  }

  Napi::Value Reset(const Napi::CallbackInfo& info) {
    device_->Reset();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    device_->Close();
    // The program's views of the frame rings read as empty from now on, and the mapping goes now
    // (the ports let go of it in Close), not whenever the buffer is collected.
    if (!frame_buffer_.IsEmpty()) {
      frame_buffer_.Value().Detach();
      frame_buffer_.Reset();
      frame_layout_.Reset();
      frame_hold_->reset();
    }
    return info.Env().Undefined();
  }

  // frameRings(slots, slotSize) -> the js port's shared rings (net/frame_rings.h), made on the first
  // call; later calls return the same object.
  Napi::Value FrameRingsJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string err;
    if (!frame_layout_.IsEmpty()) return frame_layout_.Value();
    int err_no = 0;
    auto rings = FrameRings::Create(device_->group_count(), info[0].As<Napi::Number>().Uint32Value(),
                                    info[1].As<Napi::Number>().Uint32Value(), &err_no, &err);
    if (!rings) ThrowErrno(env, err_no, "frameRings", err);
    Check(device_->AttachFrameRings(rings, &err), err, "frameRings");
    // The buffer holds the mapping too: views may outlive this object if close() is never called.
    auto* hold = new std::shared_ptr<FrameRings>(rings);
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
        env, rings->base(), rings->size(), [](Napi::Env, void*, std::shared_ptr<FrameRings>* h) { delete h; }, hold);
    Napi::Object layout = Napi::Object::New(env);
    layout.Set("buffer", buffer);
    layout.Set("pairs", rings->pairs());
    layout.Set("slots", rings->slots());
    layout.Set("slotSize", rings->slot_size());
    layout.Set("ringsStart", static_cast<double>(rings->ring_offset(0, false)));
    layout.Set("ringStride", static_cast<double>(rings->ring_stride()));
    layout.Set("slotsStart", static_cast<double>(rings->slots_start()));
    frame_buffer_ = Napi::Persistent(buffer);
    frame_layout_ = Napi::Persistent(layout);
    frame_hold_ = hold;
    return layout;
  }

  // forward(add, spec): the user port's run-time forwards; spec as lib/net/ports/user.ts spells it out.
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    std::string err;
    int rc = device_->Forward(info[0].As<Napi::Boolean>().Value(), info[1].As<Napi::String>().Utf8Value(), &err);
    if (rc != 0) {
      const char* code = strerrorname_np(rc);  // err says it all: no strerror appended
      ThrowError(info.Env(), code ? code : "EUNKNOWN", err, rc, "forward");
    }
    return info.Env().Undefined();
  }

  // announce(mac): SEND_RARP; whether the port told a network (a 6-byte Buffer, checked in TS).
  Napi::Value Announce(const Napi::CallbackInfo& info) {
    Napi::Buffer<uint8_t> mac = info[0].As<Napi::Buffer<uint8_t>>();
    if (mac.Length() < 6) {
      Napi::TypeError::New(info.Env(), "announce: a MAC is 6 bytes").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    return Napi::Boolean::New(info.Env(), device_->Announce(mac.Data()) == 1);
  }

  // saveState() -> {forwards, slirpVersion, slirp, macs}: the port's DEVICE_STATE values
  // (net/port_state.h) for lib/net/device_state.ts to write into a blob.
  Napi::Value SaveState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    PortState state;
    std::string err;
    int rc = device_->SaveState(&state, &err);
    if (rc != 0) ThrowError(env, strerrorname_np(rc) ? strerrorname_np(rc) : "EUNKNOWN", err, rc, "saveState");
    Napi::Object out = Napi::Object::New(env);
    Napi::Array forwards = Napi::Array::New(env, state.forwards.size());
    for (size_t i = 0; i < state.forwards.size(); i++) forwards.Set(static_cast<uint32_t>(i), state.forwards[i]);
    out.Set("forwards", forwards);
    out.Set("slirpVersion", state.slirp_version);
    out.Set("slirp", Napi::Buffer<uint8_t>::Copy(env, state.slirp.data(), state.slirp.size()));
    Napi::Array macs = Napi::Array::New(env, state.macs.size());
    for (size_t i = 0; i < state.macs.size(); i++)
      macs.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, state.macs[i].data(), 6));
    out.Set("macs", macs);
    return out;
  }

  // loadState({slirpVersion, slirp, macs}): values lib/net/device_state.ts parsed and checked.
  Napi::Value LoadState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object in = info[0].As<Napi::Object>();
    PortState state;
    state.slirp_version = in.Get("slirpVersion").As<Napi::Number>().Int32Value();
    Napi::Buffer<uint8_t> slirp = in.Get("slirp").As<Napi::Buffer<uint8_t>>();
    state.slirp.assign(slirp.Data(), slirp.Data() + slirp.Length());
    Napi::Array macs = in.Get("macs").As<Napi::Array>();
    for (uint32_t i = 0; i < macs.Length(); i++) {
      Napi::Buffer<uint8_t> mac = macs.Get(i).As<Napi::Buffer<uint8_t>>();
      if (mac.Length() != 6) ThrowError(env, "EINVAL", "loadState: a MAC is 6 bytes");
      std::array<uint8_t, 6> m;
      memcpy(m.data(), mac.Data(), 6);
      state.macs.push_back(m);
    }
    std::string err;
    int rc = device_->LoadState(state, &err);
    if (rc != 0) ThrowError(env, strerrorname_np(rc) ? strerrorname_np(rc) : "EUNKNOWN", err, rc, "loadState");
    return env.Undefined();
  }

  Napi::Value RingsStopped(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), device_->RingsStopped());
  }

  Napi::Value TakeEvents(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<std::string> events = device_->TakeEvents();
    Napi::Array out = Napi::Array::New(env, events.size());
    for (size_t i = 0; i < events.size(); i++) out.Set(static_cast<uint32_t>(i), events[i]);
    return out;
  }

  Napi::Value Stats(const Napi::CallbackInfo&) { return stats_.Value(); }

  // A device made with 0 workers is served by the JS thread: serveInline(arm) is one pass over every
  // pair (whether anything moved); inlineFd is readable when a queue was kicked (-1 otherwise).
  Napi::Value ServeInline(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), device_->ServeInline(info[0].ToBoolean().Value()));
  }
  Napi::Value InlineFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_->inline_fd()); }

  Napi::Value WorkerNames(const Napi::CallbackInfo& info) {
    Napi::Array out = Napi::Array::New(info.Env(), device_->worker_count());
    for (int w = 0; w < device_->worker_count(); w++) out.Set(static_cast<uint32_t>(w), device_->worker_name(w));
    return out;
  }

  static constexpr napi_type_tag kTypeTag = {0x7668752d6e657464, 0x6576696365777270};  // "vhu-netdevicewrp"
  Napi::Reference<Napi::ArrayBuffer> stats_;
  std::unique_ptr<NetDevice> device_;
  // The js port's rings, once asked for: the buffer over them, its layout object, and the buffer's
  // own reference to them (owned by the buffer's finalizer; emptied by close()).
  Napi::Reference<Napi::ArrayBuffer> frame_buffer_;
  Napi::ObjectReference frame_layout_;
  std::shared_ptr<FrameRings>* frame_hold_ = nullptr;
};

}  // namespace

NetDevice* UnwrapNetDevice(Napi::Value v) { return NetDeviceWrap::From(v); }

void InitDevice(Napi::Env env, Napi::Object exports) {
  exports.Set("NetDevice", NetDeviceWrap::Define(env));
  // The counters' layout (core/virtqueue.h): their names in slot order and the slots per queue.
  Napi::Array names = Napi::Array::New(env, kStatsPerQueue);
  for (int i = 0; i < kStatsPerQueue; i++) names.Set(static_cast<uint32_t>(i), kQueueStatNames[i]);
  exports.Set("queueStatNames", names);
  exports.Set("queueStatStride", Napi::Number::New(env, kStatsStride));
}

}  // namespace vhost
