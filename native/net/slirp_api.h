// libslirp (the user-mode TCP/IP stack of QEMU's -netdev user and slirp4netns), loaded at run time:
// the addon must build where its development files are absent, and every other port must work where
// the library itself is absent. So libslirp.h is never included: what we use of its public 4.x ABI is
// declared here, mirrored from the header text of 4.1 and 4.7 (the fields and callbacks we fill did
// not move in between), and LoadSlirp dlopens libslirp.so.0 and looks the functions up.
// Not thread-safe, like libslirp itself: one instance is only ever used by one thread at a time.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace vhost {

// libslirp's opaque stack instance (its `Slirp`).
struct SlirpStack;

// Poll flags of SlirpAddPollCb and SlirpGetREventsCb (SLIRP_POLL_*).
enum SlirpPollFlag : int {
  kSlirpPollIn = 1 << 0,
  kSlirpPollOut = 1 << 1,
  kSlirpPollPri = 1 << 2,
  kSlirpPollErr = 1 << 3,
  kSlirpPollHup = 1 << 4,
};

using SlirpWriteCb = ssize_t (*)(const void* buf, size_t len, void* opaque);
using SlirpReadCb = ssize_t (*)(void* buf, size_t len, void* opaque);
using SlirpTimerCb = void (*)(void* opaque);
using SlirpAddPollCb = int (*)(int fd, int events, void* opaque);  // returns an index for get_revents
using SlirpGetREventsCb = int (*)(int idx, void* opaque);

// SlirpCb: the callbacks libslirp makes, all synchronously from inside a call into it. `opaque` is the
// pointer given to slirp_new. Field order is the ABI.
struct SlirpCallbacks {
  // A frame for the guest (Ethernet, at most MTU + 14 bytes); returns len, or < 0 on error.
  SlirpWriteCb send_packet;
  void (*guest_error)(const char* msg, void* opaque);
  int64_t (*clock_get_ns)(void* opaque);
  void* (*timer_new)(SlirpTimerCb cb, void* cb_opaque, void* opaque);
  void (*timer_free)(void* timer, void* opaque);
  void (*timer_mod)(void* timer, int64_t expire_time_ms, void* opaque);  // ms on clock_get_ns's clock
  void (*register_poll_fd)(int fd, void* opaque);                        // Windows only; may do nothing
  void (*unregister_poll_fd)(int fd, void* opaque);
  // Some socket buffer drained: the next pollfds_fill may ask for more fds.
  void (*notify)(void* opaque);
  // Config version 4 (4.7) only; ignored at version 1, which we use. Left null.
  void (*init_completed)(SlirpStack* slirp, void* opaque);
  void* (*timer_new_opaque)(int timer_id, void* cb_opaque, void* opaque);
};

// SlirpConfig, version 1: the fields every 4.x since 4.1 reads. Later versions append fields after
// enable_emu; at version 1 libslirp reads none of them, so they are not declared.
struct SlirpConfigV1 {
  uint32_t version;  // 1
  int restricted;    // 1: the guest reaches nothing outside but the forwards
  bool in_enabled;   // IPv4
  in_addr vnetwork;
  in_addr vnetmask;
  in_addr vhost;  // the gateway, which is the host
  bool in6_enabled;
  in6_addr vprefix_addr6;
  uint8_t vprefix_len;
  in6_addr vhost6;
  const char* vhostname;  // DHCP host name offered, or null
  const char* tftp_server_name;
  const char* tftp_path;  // null: no TFTP
  const char* bootfile;
  in_addr vdhcp_start;  // first address DHCP hands out
  in_addr vnameserver;  // the DNS address the guest is told (forwarded to the host's resolver)
  in6_addr vnameserver6;
  const char** vdnssearch;  // null-terminated, or null
  const char* vdomainname;
  size_t if_mtu;  // 0: 1500; at most 65521
  size_t if_mru;
  bool disable_host_loopback;  // the gateway address does not lead to the host's 127.0.0.1
  bool enable_emu;             // legacy protocol emulation: never (libslirp itself calls it unsafe)
};

// The functions we call. Immutable once loaded; shared by every device of the process.
struct SlirpApi {
  const char* (*version_string)();
  SlirpStack* (*create)(const SlirpConfigV1* cfg, const SlirpCallbacks* cb, void* opaque);  // slirp_new
  void (*cleanup)(SlirpStack* slirp);
  void (*input)(SlirpStack* slirp, const uint8_t* frame, int len);
  void (*pollfds_fill)(SlirpStack* slirp, uint32_t* timeout_ms, SlirpAddPollCb add_poll, void* opaque);
  void (*pollfds_poll)(SlirpStack* slirp, int select_error, SlirpGetREventsCb get_revents, void* opaque);
  int (*add_hostfwd)(SlirpStack* slirp, int is_udp, in_addr host, int host_port, in_addr guest, int guest_port);
  int (*remove_hostfwd)(SlirpStack* slirp, int is_udp, in_addr host, int host_port);
  // 4.5 and later (IPv6 host addresses); null before.
  int (*add_hostxfwd)(SlirpStack* slirp, const sockaddr* host, socklen_t host_len, const sockaddr* guest,
                      socklen_t guest_len, int flags);
  int (*remove_hostxfwd)(SlirpStack* slirp, const sockaddr* host, socklen_t host_len, int flags);
  // Its state for a migration (every 4.x has them; null if a library lacks them). The save returns
  // void before 4.7 and int after: called as void, its result never read.
  void (*state_save)(SlirpStack* slirp, SlirpWriteCb write, void* opaque);
  int (*state_load)(SlirpStack* slirp, int version, SlirpReadCb read, void* opaque);  // < 0: failed
  int (*state_version)();
  int major = 0, minor = 0;
  std::string version;
};

// Flags of add_hostxfwd/remove_hostxfwd (SLIRP_HOSTFWD_*).
constexpr int kSlirpHostFwdUdp = 1;
constexpr int kSlirpHostFwdV6Only = 2;

// The library the environment names (VHOST_USER_LIBSLIRP, else libslirp.so.0), loaded on the first
// call; later calls return the same table or the same error. Null with *err set to one line for the
// user (what is missing and the package to install).
const SlirpApi* LoadSlirp(std::string* err);

// Loads the library at `path` afresh (not cached): for LoadSlirp and for tests of the failure cases.
// Null with *err set. On success the library stays loaded for the life of the process.
std::unique_ptr<const SlirpApi> LoadSlirpFrom(const char* path, std::string* err);

}  // namespace vhost
