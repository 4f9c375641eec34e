// Module init: registers the wraps, and the error class every native error is raised as.
#include <string.h>

#include <cerrno>

#include "napi/addon_data.h"

namespace vhost {

void ThrowError(Napi::Env env, const std::string& code, const std::string& message, int err_no, const char* op) {
  AddonData* data = env.GetInstanceData<AddonData>();
  Napi::Object opts = Napi::Object::New(env);
  if (err_no) opts.Set("errno", err_no);
  if (op) opts.Set("op", op);
  if (data && !data->error_class.IsEmpty()) {
    Napi::Object e = data->error_class.New({Napi::String::New(env, code), Napi::String::New(env, message), opts});
    throw Napi::Error(env, e);
  }
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", code);
  throw e;
}

void ThrowErrno(Napi::Env env, int err_no, const char* op, const std::string& what) {
  const char* name = strerrorname_np(err_no);
  ThrowError(env, name ? name : "EUNKNOWN", what + ": " + strerror(err_no), err_no, op);
}

namespace {

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  AddonData* data = info.Env().GetInstanceData<AddonData>();
  data->error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Object InitExports(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass));
  InitSocket(env, exports);
  InitOs(env, exports);
  InitDevice(env, exports);
  InitCapture(env, exports);
  InitSwitch(env, exports);
  InitVhostKernel(env, exports);
  return exports;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) { return InitExports(env, exports); }

}  // namespace vhost

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return vhost::Init(env, exports); }

NODE_API_MODULE(vhost_user, InitAddon)
