#include "net/slirp_api.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace vhost {

namespace {

// The offsets of SlirpConfig's version-1 fields on LP64, worked out by hand from libslirp.h's text
// (C layout rules: in_addr aligns to 4, in6_addr to 4, pointers and size_t to 8). A field declared in
// the wrong place or with the wrong type moves one of these.
static_assert(sizeof(void*) != 8 || offsetof(SlirpConfigV1, vnetwork) == 12, "SlirpConfig.vnetwork");
static_assert(sizeof(void*) != 8 || offsetof(SlirpConfigV1, in6_enabled) == 24, "SlirpConfig.in6_enabled");
static_assert(sizeof(void*) != 8 || offsetof(SlirpConfigV1, vprefix_len) == 44, "SlirpConfig.vprefix_len");
static_assert(sizeof(void*) != 8 || offsetof(SlirpConfigV1, vhostname) == 64, "SlirpConfig.vhostname");
static_assert(sizeof(void*) != 8 || offsetof(SlirpConfigV1, vdhcp_start) == 96, "SlirpConfig.vdhcp_start");
static_assert(sizeof(void*) != 8 || offsetof(SlirpConfigV1, vdnssearch) == 120, "SlirpConfig.vdnssearch");
static_assert(sizeof(void*) != 8 || offsetof(SlirpConfigV1, if_mtu) == 136, "SlirpConfig.if_mtu");
static_assert(sizeof(void*) != 8 || offsetof(SlirpConfigV1, disable_host_loopback) == 152, "SlirpConfig.flags");
static_assert(sizeof(void*) != 8 || sizeof(SlirpCallbacks) == 11 * 8, "SlirpCb: nine callbacks of 4.1, two of 4.7");

const char kInstallHint[] = "install Debian's libslirp0 (apt-get install libslirp0) or use another port";

// Looks `name` up into *slot; false (and *missing = name) when the library lacks it.
template <typename F>
bool Bind(void* handle, const char* name, F* slot, std::string* missing) {
  *slot = reinterpret_cast<F>(dlsym(handle, name));
  if (!*slot && missing->empty()) *missing = name;
  return *slot != nullptr;
}

// "4.7.0" -> 4, 7; false for anything else.
bool ParseVersion(const char* text, int* major, int* minor) { return text && sscanf(text, "%d.%d", major, minor) == 2; }

}  // namespace

std::unique_ptr<const SlirpApi> LoadSlirpFrom(const char* path, std::string* err) {
  dlerror();
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    *err = std::string("the user port needs libslirp, which could not be loaded: ") + kInstallHint + " (" +
           (why ? why : path) + ")";
    return nullptr;
  }
  auto api = std::make_unique<SlirpApi>();
  std::string missing;
  Bind(handle, "slirp_version_string", &api->version_string, &missing);
  Bind(handle, "slirp_new", &api->create, &missing);
  Bind(handle, "slirp_cleanup", &api->cleanup, &missing);
  Bind(handle, "slirp_input", &api->input, &missing);
  Bind(handle, "slirp_pollfds_fill", &api->pollfds_fill, &missing);
  Bind(handle, "slirp_pollfds_poll", &api->pollfds_poll, &missing);
  Bind(handle, "slirp_add_hostfwd", &api->add_hostfwd, &missing);
  Bind(handle, "slirp_remove_hostfwd", &api->remove_hostfwd, &missing);
  std::string optional;  // IPv6 forwards: 4.5 and later
  Bind(handle, "slirp_add_hostxfwd", &api->add_hostxfwd, &optional);
  Bind(handle, "slirp_remove_hostxfwd", &api->remove_hostxfwd, &optional);
  std::string no_state;  // migration of its state only
  Bind(handle, "slirp_state_save", &api->state_save, &no_state);
  Bind(handle, "slirp_state_load", &api->state_load, &no_state);
  Bind(handle, "slirp_state_version", &api->state_version, &no_state);
  if (!no_state.empty()) api->state_save = nullptr;  // all three or none
  const char* version = missing.empty() ? api->version_string() : nullptr;
  if (!missing.empty() || !ParseVersion(version, &api->major, &api->minor) || api->major != 4 || api->minor < 1) {
    *err = !missing.empty()
               ? std::string(path) + " lacks " + missing
               : std::string("libslirp ") + (version ? version : "of unknown version") + " found at " + path;
    *err += ": the user port needs libslirp 4.1 or a later 4.x; " + std::string(kInstallHint);
    dlclose(handle);
    return nullptr;
  }
  api->version = version;
  // The handle is deliberately never closed: stacks made from it may outlive any owner we could name.
  return api;
}

const SlirpApi* LoadSlirp(std::string* err) {
  static std::mutex mu;
  static bool tried = false;
  static std::unique_ptr<const SlirpApi> api;
  static std::string error;
  std::lock_guard<std::mutex> lock(mu);
  if (!tried) {
    tried = true;
    const char* path = getenv("VHOST_USER_LIBSLIRP");
    api = LoadSlirpFrom(path && *path ? path : "libslirp.so.0", &error);
  }
  if (!api) *err = error;
  return api.get();
}

}  // namespace vhost
