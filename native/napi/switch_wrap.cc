// Switch for JS (lib/net/switch.ts): `new Switch(maxMacs, ageingSeconds, pollUs)`, then
// attach(device, vlan) -> port number, detach(device), attachTap(ifname, vlan) -> port number,
// detachTap(port), tapStats(port) -> [to the tap, from it] counters, attachVxlan(localAddress, localPort,
// remotes [{address, port}], vni, vlan) -> {ports, mtu}, detachVxlan(port), vxlanStats(port) -> {stats, drops},
// takeEvents(), ports(), macTable(), counters(), close().
// The devices are NetDevice objects of port 'switch' (UnwrapNetDevice); lib/net/switch.ts checks the
// values and keeps the devices' JS objects alive while attached.
#include <cstdio>
#include <memory>
#include <string>

#include "napi/addon_data.h"
#include "net/net_device.h"
#include "net/switch/switch.h"

namespace vhost {

namespace {

constexpr napi_type_tag kSwitchTag = {0x7a1c0e53d4b24f1eULL, 0x9b0c6a1f3e5d7c21ULL};

std::string MacText(const uint8_t* mac) {
  char text[18];
  snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

class SwitchWrap : public Napi::ObjectWrap<SwitchWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "Switch",
        {InstanceMethod<&SwitchWrap::Attach>("attach"), InstanceMethod<&SwitchWrap::Detach>("detach"),
         InstanceMethod<&SwitchWrap::Ports>("ports"), InstanceMethod<&SwitchWrap::MacTable>("macTable"),
         InstanceMethod<&SwitchWrap::Counters>("counters"), InstanceMethod<&SwitchWrap::AttachTap>("attachTap"),
         InstanceMethod<&SwitchWrap::DetachTap>("detachTap"), InstanceMethod<&SwitchWrap::TapStats>("tapStats"),
         InstanceMethod<&SwitchWrap::AttachVxlan>("attachVxlan"),
         InstanceMethod<&SwitchWrap::DetachVxlan>("detachVxlan"), InstanceMethod<&SwitchWrap::VxlanStats>("vxlanStats"),
         InstanceMethod<&SwitchWrap::TakeEvents>("takeEvents"), InstanceMethod<&SwitchWrap::Close>("close")});
  }

  explicit SwitchWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SwitchWrap>(info) {
    Switch::Options o{info[0].As<Napi::Number>().Uint32Value(), info[1].As<Napi::Number>().Uint32Value(),
                      info[2].As<Napi::Number>().Uint32Value()};
    if (o.max_macs < 1 || o.max_macs > (1u << 20) || o.ageing_s < 1)
      ThrowError(info.Env(), "EINVAL", "switch: maxMacs must be 1..1048576 and ageing at least 1 s");
    switch_ = std::make_unique<Switch>(o);
    napi_type_tag_object(info.Env(), info.This(), &kSwitchTag);
    // The thread must be stopped before the environment goes away (Worker.terminate, vitest threads).
    napi_add_env_cleanup_hook(info.Env(), &SwitchWrap::OnEnvCleanup, switch_.get());
  }

  ~SwitchWrap() override { CloseSwitch(); }

  static Switch* From(Napi::Value v) {
    bool tagged = false;
    if (!v.IsObject() || napi_check_object_type_tag(v.Env(), v, &kSwitchTag, &tagged) != napi_ok || !tagged)
      return nullptr;
    return Unwrap(v.As<Napi::Object>())->switch_.get();
  }

 private:
  static void OnEnvCleanup(void* arg) { static_cast<Switch*>(arg)->Shutdown(); }

  void CloseSwitch() {
    if (!switch_) return;
    napi_remove_env_cleanup_hook(Env(), &SwitchWrap::OnEnvCleanup, switch_.get());
    switch_.reset();  // detaches every device, stops the thread
  }

  Switch& Live(Napi::Env env) {
    if (!switch_) ThrowError(env, "EBADF", "the switch is closed");
    return *switch_;
  }

  NetDevice& DeviceArg(const Napi::CallbackInfo& info) {
    NetDevice* d = UnwrapNetDevice(info[0]);
    if (!d) ThrowError(info.Env(), "EINVAL", "a switch attaches NetDevice objects");
    return *d;
  }

  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Switch& sw = Live(info.Env());
    NetDevice& device = DeviceArg(info);
    const uint32_t vlan = info[1].As<Napi::Number>().Uint32Value();
    if (vlan < 1 || vlan > 4094) ThrowError(info.Env(), "EINVAL", "vlan must be 1..4094");
    std::string err;
    int port = -1;
    int rc = sw.Attach(&device, static_cast<uint16_t>(vlan), &port, &err);
    if (rc != 0) {
      const char* code = strerrorname_np(rc);
      ThrowError(info.Env(), code ? code : "EUNKNOWN", err, rc, "attach");
    }
    return Napi::Number::New(info.Env(), port);
  }

  Napi::Value AttachTap(const Napi::CallbackInfo& info) {
    Switch& sw = Live(info.Env());
    const std::string ifname = info[0].As<Napi::String>().Utf8Value();
    const uint32_t vlan = info[1].As<Napi::Number>().Uint32Value();
    if (vlan < 1 || vlan > 4094) ThrowError(info.Env(), "EINVAL", "vlan must be 1..4094");
    std::string err;
    int port = -1;
    int rc = sw.AttachTap(ifname, static_cast<uint16_t>(vlan), &port, &err);
    if (rc != 0) {
      const char* code = strerrorname_np(rc);
      ThrowError(info.Env(), code ? code : "EUNKNOWN", err, rc, "attachTap");
    }
    return Napi::Number::New(info.Env(), port);
  }

  Napi::Value DetachTap(const Napi::CallbackInfo& info) {
    Switch& sw = Live(info.Env());
    return Napi::Boolean::New(info.Env(), sw.DetachTap(info[0].As<Napi::Number>().Int32Value()));
  }

  // [to the tap, from it], each {name: bigint} under kQueueStatNames; undefined when no such tap port.
  Napi::Value TapStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<uint64_t> s;
    if (!Live(env).TapStats(info[0].As<Napi::Number>().Int32Value(), &s)) return env.Undefined();
    return PairStats(env, s);
  }

  // Plain values checked in lib/net/switch.ts; the addresses parsed (and refused) natively.
  Napi::Value AttachVxlan(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Switch& sw = Live(env);
    VxlanUplink::Config config;
    config.local = {info[0].As<Napi::String>().Utf8Value(),
                    static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value())};
    Napi::Array remotes = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < remotes.Length(); i++) {
      Napi::Object r = remotes.Get(i).As<Napi::Object>();
      config.remotes.push_back({r.Get("address").As<Napi::String>().Utf8Value(),
                                static_cast<uint16_t>(r.Get("port").As<Napi::Number>().Uint32Value())});
    }
    config.vni = info[3].As<Napi::Number>().Uint32Value();
    const uint32_t vlan = info[4].As<Napi::Number>().Uint32Value();
    if (vlan < 1 || vlan > 4094) ThrowError(env, "EINVAL", "vlan must be 1..4094");
    std::string err;
    std::vector<int> ports;
    uint32_t mtu = 0;
    int rc = sw.AttachVxlan(config, static_cast<uint16_t>(vlan), &ports, &mtu, &err);
    if (rc != 0) {
      const char* code = strerrorname_np(rc);
      ThrowError(env, code ? code : "EUNKNOWN", "vxlan: " + err, rc, "attachVxlan");
    }
    Napi::Object out = Napi::Object::New(env);
    Napi::Array numbers = Napi::Array::New(env, ports.size());
    for (size_t i = 0; i < ports.size(); i++) numbers.Set(static_cast<uint32_t>(i), ports[i]);
    out.Set("ports", numbers);
    out.Set("mtu", mtu);
    return out;
  }

  Napi::Value DetachVxlan(const Napi::CallbackInfo& info) {
    Switch& sw = Live(info.Env());
    return Napi::Boolean::New(info.Env(), sw.DetachVxlan(info[0].As<Napi::Number>().Int32Value()));
  }

  // {stats: [to the remote, from it] as tapStats, drops: the uplink's datagrams dropped per cause}.
  Napi::Value VxlanStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<uint64_t> s, d;
    if (!Live(env).VxlanStats(info[0].As<Napi::Number>().Int32Value(), &s, &d)) return env.Undefined();
    Napi::Object drops = Napi::Object::New(env);
    drops.Set("unknownSource", Napi::BigInt::New(env, d[VxlanUplink::kUnknownSource]));
    drops.Set("short", Napi::BigInt::New(env, d[static_cast<int>(VxlanVerdict::kShort)]));
    drops.Set("noVni", Napi::BigInt::New(env, d[static_cast<int>(VxlanVerdict::kNoVni)]));
    drops.Set("otherVni", Napi::BigInt::New(env, d[static_cast<int>(VxlanVerdict::kOtherVni)]));
    drops.Set("tooLong", Napi::BigInt::New(env, d[static_cast<int>(VxlanVerdict::kTooLong)]));
    Napi::Object out = Napi::Object::New(env);
    out.Set("stats", PairStats(env, s));
    out.Set("drops", drops);
    return out;
  }

  // Two queues' counters (2 x kStatsStride) as [{name: bigint}, {name: bigint}].
  static Napi::Array PairStats(Napi::Env env, const std::vector<uint64_t>& s) {
    Napi::Array out = Napi::Array::New(env, 2);
    for (uint32_t q = 0; q < 2; q++) {
      Napi::Object o = Napi::Object::New(env);
      for (int k = 0; k < kStatsPerQueue; k++)
        o.Set(kQueueStatNames[k], Napi::BigInt::New(env, s[q * kStatsStride + k]));
      out.Set(q, o);
    }
    return out;
  }

  Napi::Value TakeEvents(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<std::string> events = Live(env).TakeEvents();
    Napi::Array out = Napi::Array::New(env, events.size());
    for (size_t i = 0; i < events.size(); i++) out.Set(static_cast<uint32_t>(i), events[i]);
    return out;
  }

  Napi::Value Detach(const Napi::CallbackInfo& info) {
    Switch& sw = Live(info.Env());
    return Napi::Boolean::New(info.Env(), sw.Detach(&DeviceArg(info)));
  }

  Napi::Value Ports(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<Switch::PortInfo> ports = Live(env).Ports();
    Napi::Array out = Napi::Array::New(env, ports.size());
    for (size_t i = 0; i < ports.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("port", ports[i].port);
      o.Set("vlan", ports[i].vlan);
      if (!ports[i].tap.empty()) o.Set("tap", ports[i].tap);
      if (!ports[i].vxlan.empty()) o.Set("vxlan", ports[i].vxlan);
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }

  Napi::Value MacTable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<MacTable::Entry> entries = Live(env).MacEntries();
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("mac", MacText(entries[i].mac));
      o.Set("vlan", entries[i].vlan);
      o.Set("port", entries[i].port);
      o.Set("ageSeconds", entries[i].age_s);
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Switch::Counters c = Live(env).counters();
    Napi::Object o = Napi::Object::New(env);
    o.Set("macs", Napi::Number::New(env, static_cast<double>(c.macs)));
    o.Set("refused", Napi::BigInt::New(env, c.refused));
    o.Set("moves", Napi::BigInt::New(env, c.moves));
    o.Set("flooded", Napi::BigInt::New(env, c.flooded));
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseSwitch();
    return info.Env().Undefined();
  }

  std::unique_ptr<Switch> switch_;
};

}  // namespace

Switch* UnwrapSwitch(Napi::Value v) { return SwitchWrap::From(v); }

void InitSwitch(Napi::Env env, Napi::Object exports) { exports.Set("Switch", SwitchWrap::Define(env)); }

}  // namespace vhost
