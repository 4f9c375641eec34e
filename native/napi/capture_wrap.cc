// Capture for JS (lib/observe/pcap.ts): `new Capture(device, ringBytes, snaplen)` maps a ring per
// queue pair (net/capture.h) and attaches them to the device (or, given a Switch, one ring that the
// switch's thread records every frame entering the switch into); the writer reads the rings through one
// external ArrayBuffer and says how much it wrote (consume). stop() detaches from the device (its
// workers are stopped around it, so no record is written afterwards); close() also detaches the
// ArrayBuffer and then unmaps, in that order, so no JS view outlives the memory. The writer sleeps
// between drains; wakeFd (an eventfd, closed by close()) wakes it when a ring fills meanwhile.
#include <memory>
#include <string>

#include "napi/addon_data.h"
#include "net/capture.h"
#include "net/net_device.h"
#include "net/switch/switch.h"

namespace vhost {

namespace {

class CaptureWrap : public Napi::ObjectWrap<CaptureWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "Capture",
        {InstanceAccessor<&CaptureWrap::Buffer>("buffer"), InstanceAccessor<&CaptureWrap::Pairs>("pairs"),
         InstanceAccessor<&CaptureWrap::WakeFd>("wakeFd"), InstanceMethod<&CaptureWrap::WriterSleeps>("writerSleeps"),
         InstanceMethod<&CaptureWrap::Readable>("readable"), InstanceMethod<&CaptureWrap::Consume>("consume"),
         InstanceMethod<&CaptureWrap::Counts>("counts"), InstanceMethod<&CaptureWrap::Stop>("stop"),
         InstanceMethod<&CaptureWrap::Close>("close")});
  }

  explicit CaptureWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CaptureWrap>(info) {
    Napi::Env env = info.Env();
    device_ = UnwrapNetDevice(info[0]);
    Switch* sw = device_ ? nullptr : UnwrapSwitch(info[0]);
    if (!device_ && !sw) ThrowError(env, "EINVAL", "Capture needs a NetDevice or an open Switch");
    const int64_t ring_bytes = info[1].As<Napi::Number>().Int64Value();
    const int64_t snaplen = info[2].As<Napi::Number>().Int64Value();
    if (ring_bytes <= 0 || snaplen <= 0 || snaplen > ring_bytes / 2)
      ThrowError(env, "EINVAL", "capture: snaplen must be 1..half the ring size");
    int err_no = 0;
    std::string err;
    // A switch's one thread records every frame once: one ring.
    std::unique_ptr<Capture> made =
        Capture::Create(device_ ? device_->group_count() : 1, static_cast<uint64_t>(ring_bytes),
                        static_cast<uint32_t>(snaplen), &err_no, &err);
    if (!made) ThrowErrno(env, err_no, "capture", err);
    capture_ = std::move(made);
    // The buffer holds the Capture (not the mapping, which close() unmaps after detaching it).
    auto* hold = new std::shared_ptr<Capture>(capture_);
    buffer_ = Napi::Persistent(Napi::ArrayBuffer::New(
        env, capture_->data(), capture_->mapped_bytes(),
        [](Napi::Env, void*, std::shared_ptr<Capture>* h) { delete h; }, hold));
    if (sw) {
      if (sw->capture()) {
        buffer_.Value().Detach();
        capture_->Close();
        ThrowError(env, "EBUSY", "capture: the switch is being captured already");
      }
      sw->SetCapture(capture_);
      // The switch object is kept while attached; Detach finds its native switch again (gone once closed).
      switch_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
      return;
    }
    int rc = device_->SetCapture(capture_, &err);
    if (rc != 0) {
      buffer_.Value().Detach();
      capture_->Close();
      ThrowErrno(env, rc, "capture", err);
    }
    // The device must outlive our pointer to it while attached.
    device_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
  }

 private:
  Napi::Value Buffer(const Napi::CallbackInfo&) { return buffer_.Value(); }
  Napi::Value Pairs(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), capture_->pairs()); }
  Napi::Value WakeFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), capture_->wake_fd()); }

  // writerSleeps(): the writer found nothing to write; a worker writes wakeFd once a ring fills.
  Napi::Value WriterSleeps(const Napi::CallbackInfo& info) {
    capture_->WriterSleeps();
    return info.Env().Undefined();
  }

  int Pair(const Napi::CallbackInfo& info) {
    int p = info[0].As<Napi::Number>().Int32Value();
    if (p < 0 || p >= capture_->pairs()) ThrowError(info.Env(), "EINVAL", "capture: no pair " + std::to_string(p));
    if (!capture_->data()) ThrowError(info.Env(), "EBADF", "capture: closed");
    return p;
  }

  // readable(pair) -> [offset in buffer, length]: the next bytes to write, in one piece.
  Napi::Value Readable(const Napi::CallbackInfo& info) {
    const int p = Pair(info);
    uint64_t offset = 0, length = 0;
    capture_->ring(p).Readable(&offset, &length);
    Napi::Array out = Napi::Array::New(info.Env(), 2);
    out.Set(0u, Napi::Number::New(info.Env(), static_cast<double>(capture_->ring_bytes() * p + offset)));
    out.Set(1u, Napi::Number::New(info.Env(), static_cast<double>(length)));
    return out;
  }

  // consume(pair, n): n bytes from readable() are in the file; the worker may reuse them.
  Napi::Value Consume(const Napi::CallbackInfo& info) {
    const int p = Pair(info);
    const int64_t n = info[1].As<Napi::Number>().Int64Value();
    uint64_t offset = 0, length = 0;
    capture_->ring(p).Readable(&offset, &length);
    if (n < 0 || static_cast<uint64_t>(n) > length) ThrowError(info.Env(), "EINVAL", "capture: consumed too much");
    capture_->ring(p).Consume(static_cast<uint64_t>(n));
    return info.Env().Undefined();
  }

  // counts() -> {frames, dropped}: records written into the rings and frames not captured for lack of room.
  Napi::Value Counts(const Napi::CallbackInfo& info) {
    double frames = 0, dropped = 0;
    for (int p = 0; p < capture_->pairs(); p++) {
      frames += static_cast<double>(capture_->ring(p).frames());
      dropped += static_cast<double>(capture_->ring(p).dropped());
    }
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("frames", frames);
    out.Set("dropped", dropped);
    return out;
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Detach();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Detach();
    if (!buffer_.IsEmpty()) {
      buffer_.Value().Detach();
      buffer_.Reset();
    }
    capture_->Close();
    return info.Env().Undefined();
  }

  void Detach() {
    if (!switch_ref_.IsEmpty()) {
      Switch* sw = UnwrapSwitch(switch_ref_.Value());
      if (sw && sw->capture() == capture_) sw->SetCapture(nullptr);
      switch_ref_.Reset();
    }
    if (!device_) return;
    std::string err;
    if (device_->capture() == capture_) device_->SetCapture(nullptr, &err);
    device_ = nullptr;
    device_ref_.Reset();
  }

  NetDevice* device_ = nullptr;
  Napi::ObjectReference device_ref_;
  Napi::ObjectReference switch_ref_;
  std::shared_ptr<Capture> capture_;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
};

}  // namespace

void InitCapture(Napi::Env env, Napi::Object exports) { exports.Set("Capture", CaptureWrap::Define(env)); }

}  // namespace vhost
