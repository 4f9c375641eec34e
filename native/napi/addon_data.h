// Per-environment state of the addon (Node workers each get their own) and the one way native
// errors reach JS: as the VhostUserError class that lib/errors.ts hands us once.
#pragma once

#include <napi.h>

#include <string>

namespace vhost {

struct AddonData {
  Napi::FunctionReference error_class;
};

// Throws VhostUserError(code, message, {errno, op}) as a C++ exception Node-API turns into a JS one.
[[noreturn]] void ThrowError(Napi::Env env, const std::string& code, const std::string& message, int err_no = 0,
                             const char* op = nullptr);
// Same, for a failed syscall: code is the errno name (EINVAL, ...).
[[noreturn]] void ThrowErrno(Napi::Env env, int err_no, const char* op, const std::string& what);

void InitSocket(Napi::Env env, Napi::Object exports);
void InitOs(Napi::Env env, Napi::Object exports);
void InitDevice(Napi::Env env, Napi::Object exports);
void InitCapture(Napi::Env env, Napi::Object exports);
void InitSwitch(Napi::Env env, Napi::Object exports);
void InitVhostKernel(Napi::Env env, Napi::Object exports);

class NetDevice;
// The native device of a JS NetDevice (device_wrap.cc), or null when `v` is not one.
NetDevice* UnwrapNetDevice(Napi::Value v);
class Switch;
// The native switch of a JS Switch (switch_wrap.cc), or null when `v` is not one or it is closed.
Switch* UnwrapSwitch(Napi::Value v);

}  // namespace vhost
