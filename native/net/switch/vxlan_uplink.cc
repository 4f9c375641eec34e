#include "net/switch/vxlan_uplink.h"

#include <arpa/inet.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/frame_observer.h"
#include "net/switch/frame_iovec.h"
#include "net/tx_frame.h"

namespace vhost {

namespace {

// `e` as a socket address of `family` (AF_UNSPEC: whichever its text is); an empty address is any.
bool ToSockaddr(const VxlanUplink::Endpoint& e, int family, sockaddr_storage* out, socklen_t* len) {
  *out = sockaddr_storage{};
  in_addr v4{};
  in6_addr v6{};
  const bool is_v4 = e.address.empty() ? family == AF_INET : inet_pton(AF_INET, e.address.c_str(), &v4) == 1;
  const bool is_v6 =
      !is_v4 && (e.address.empty() ? family == AF_INET6 : inet_pton(AF_INET6, e.address.c_str(), &v6) == 1);
  if ((!is_v4 && !is_v6) || (family != AF_UNSPEC && family != (is_v4 ? AF_INET : AF_INET6))) return false;
  if (is_v4) {
    auto* a = reinterpret_cast<sockaddr_in*>(out);
    a->sin_family = AF_INET;
    a->sin_port = htons(e.port);
    a->sin_addr = v4;
    *len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(out);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(e.port);
    a->sin6_addr = v6;
    *len = sizeof *a;
  }
  return true;
}

std::string Text(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (a.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(a);
    inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in.sin_port));
  }
  const auto& in6 = reinterpret_cast<const sockaddr_in6&>(a);
  inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
  return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6.sin6_port));
}

bool SameHost(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET)
    return reinterpret_cast<const sockaddr_in&>(a).sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in&>(b).sin_addr.s_addr;
  return memcmp(&reinterpret_cast<const sockaddr_in6&>(a).sin6_addr,
                &reinterpret_cast<const sockaddr_in6&>(b).sin6_addr, sizeof(in6_addr)) == 0;
}

// The MTU of the route from `local` (its port aside) to `remote`, as the kernel would send: a
// connected socket's IP_MTU. 0 with *err_no when there is no route.
uint32_t PathMtu(const sockaddr_storage& local, socklen_t local_len, const sockaddr_storage& remote,
                 socklen_t remote_len, int* err_no) {
  int s = socket(remote.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    *err_no = errno;
    return 0;
  }
  sockaddr_storage from = local;
  if (from.ss_family == AF_INET) reinterpret_cast<sockaddr_in&>(from).sin_port = 0;
  if (from.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6&>(from).sin6_port = 0;
  int mtu = 0;
  socklen_t mtu_len = sizeof mtu;
  const bool v4 = remote.ss_family == AF_INET;
  if (bind(s, reinterpret_cast<const sockaddr*>(&from), local_len) != 0 ||
      connect(s, reinterpret_cast<const sockaddr*>(&remote), remote_len) != 0 ||
      getsockopt(s, v4 ? IPPROTO_IP : IPPROTO_IPV6, v4 ? IP_MTU : IPV6_MTU, &mtu, &mtu_len) != 0)
    *err_no = errno;
  close(s);
  return *err_no ? 0 : static_cast<uint32_t>(mtu);
}

}  // namespace

std::unique_ptr<VxlanUplink> VxlanUplink::Open(const Config& config, Reporter report, int* err_no, std::string* err) {
  *err_no = EINVAL;
  if (config.vni > kVxlanMaxVni) return *err = "the VNI must be 0.." + std::to_string(kVxlanMaxVni), nullptr;
  if (config.remotes.empty() || config.remotes.size() > Forwarder::kMaxPorts)
    return *err = "a VXLAN uplink needs 1.." + std::to_string(Forwarder::kMaxPorts) + " remotes", nullptr;
  sockaddr_storage local;
  socklen_t local_len = 0;
  sockaddr_storage first;
  socklen_t first_len = 0;
  if (!ToSockaddr(config.remotes[0], AF_UNSPEC, &first, &first_len))
    return *err = "remote " + config.remotes[0].address + " is not an IPv4 or IPv6 address", nullptr;
  const int family = config.local.address.empty() ? first.ss_family : AF_UNSPEC;
  if (!ToSockaddr(config.local, family, &local, &local_len))
    return *err = "local " + config.local.address + " is not an IPv4 or IPv6 address", nullptr;
  int fd = socket(local.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return *err_no = errno, *err = std::string("socket: ") + strerror(errno), nullptr;
  const int one = 1;
  if (local.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&local), local_len) != 0) {
    *err_no = errno;
    *err = "UDP " + Text(local) + ": " + strerror(errno) +
           (errno == EADDRINUSE      ? " (another VXLAN endpoint has that port: pick another local address or port)"
            : errno == EADDRNOTAVAIL ? " (not an address of this host)"
                                     : "");
    close(fd);
    return nullptr;
  }
  std::unique_ptr<VxlanUplink> u(new VxlanUplink(fd, config, std::move(report)));
  u->local_text_ = Text(local);
  uint32_t underlay = 0;
  for (const Endpoint& e : config.remotes) {
    auto r = std::make_unique<Remote>();
    if (!ToSockaddr(e, local.ss_family, &r->addr, &r->addr_len))
      return *err = "remote " + e.address + " is not an " + (local.ss_family == AF_INET ? "IPv4" : "IPv6") +
                    " address (as " + u->local_text_ + ")",
             nullptr;
    r->text = Text(r->addr);
    for (const auto& other : u->remotes_)
      if (SameHost(other->addr, r->addr)) return *err = "remote " + e.address + " is given twice", nullptr;
    int mtu_err = 0;
    const uint32_t mtu = PathMtu(local, local_len, r->addr, r->addr_len, &mtu_err);
    if (mtu == 0)
      return *err_no = mtu_err, *err = "remote " + r->text + " from " + u->local_text_ + ": " + strerror(mtu_err),
             nullptr;
    if (underlay == 0 || mtu < underlay) underlay = mtu;
    r->uplink = u.get();
    r->to.stats = r->stats;
    r->from.stats = r->stats + kStatsStride;
    r->port.sink = r.get();
    u->remotes_.push_back(std::move(r));
  }
  const uint32_t overhead = local.ss_family == AF_INET ? kVxlanOverheadV4 : kVxlanOverheadV6;
  if (underlay < overhead + 68)
    return *err = "the underlay MTU toward a remote is " + std::to_string(underlay) + ": too small for VXLAN", nullptr;
  u->mtu_ = underlay - overhead;
  u->max_frame_ = u->mtu_ + 18;
  u->slot_ = kVxlanHeader + u->max_frame_ + 1;
  u->buffers_.reset(new uint8_t[static_cast<size_t>(u->slot_) * Forwarder::kBudget]);  // left untouched until used
  *err_no = 0;
  return u;
}

VxlanUplink::VxlanUplink(int fd, const Config& config, Reporter report)
    : fd_(fd), vni_(config.vni), report_(std::move(report)) {
  WriteVxlanHeader(header_, vni_);
}

VxlanUplink::~VxlanUplink() { close(fd_); }

void VxlanUplink::Remote::Send(const Segment* segs, int nseg, uint32_t skip, uint32_t len) {
  uplink->SendTo(*this, segs, nseg, skip, len);
}

void VxlanUplink::SendTo(Remote& r, const Segment* segs, int nseg, uint32_t skip, uint32_t len) {
  FrameIovec frame(header_, kVxlanHeader, segs, nseg, skip, len);
  msghdr m{};
  m.msg_name = &r.addr;
  m.msg_namelen = r.addr_len;
  m.msg_iov = frame.iov;
  m.msg_iovlen = static_cast<size_t>(frame.count);
  // The kernel reads the guest's buffers itself: a fault in them is EFAULT here, never a signal.
  if (sendmsg(fd_, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
    r.to.Count(kStatDrops);  // socket buffer full (EAGAIN, ENOBUFS) or no route: this copy is lost
    if (!r.send_error_reported && errno != EAGAIN && errno != ENOBUFS) {
      r.send_error_reported = true;
      report_("vxlan " + local_text_ + " to " + r.text + ": send: " + strerror(errno) +
              " (reported once; counted as drops)");
    }
    return;
  }
  CountFrame(r.to, frame.destination(), len);
}

VxlanUplink::Remote* VxlanUplink::RemoteOf(const sockaddr_storage& from) const {
  for (const auto& r : remotes_)
    if (SameHost(r->addr, from)) return r.get();
  return nullptr;
}

void VxlanUplink::Drop(int cause, Remote* r, const sockaddr_storage& from) {
  __atomic_store_n(&drops_[cause], drops_[cause] + 1, __ATOMIC_RELAXED);
  if (r) r->from.Count(kStatErrors);
  if (reported_[cause]) return;
  reported_[cause] = true;
  const char* why = cause == kUnknownSource ? "from an address that is no remote"
                                            : VxlanVerdictName(static_cast<VxlanVerdict>(cause));
  report_("vxlan " + local_text_ + ": dropped a datagram from " + Text(from) + " " + why + " (reported once; counted)");
}

int VxlanUplink::Receive(Forwarder& forwarder) {
  constexpr int kBurst = Forwarder::kBudget;
  mmsghdr msgs[kBurst];
  iovec iov[kBurst];
  sockaddr_storage from[kBurst];
  for (int i = 0; i < kBurst; i++) {
    iov[i] = iovec{buffers_.get() + static_cast<size_t>(i) * slot_, slot_};
    msgs[i].msg_hdr = msghdr{};
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int n = recvmmsg(fd_, msgs, kBurst, MSG_DONTWAIT, nullptr);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && !read_error_reported_) {
      read_error_reported_ = true;
      report_("vxlan " + local_text_ + ": receive: " + strerror(errno));
    }
    return 0;
  }
  for (int i = 0; i < n; i++) {
    Remote* r = RemoteOf(from[i]);
    if (!r) {
      Drop(kUnknownSource, nullptr, from[i]);
      continue;
    }
    const uint8_t* d = static_cast<const uint8_t*>(iov[i].iov_base);
    const uint32_t len = msgs[i].msg_len;
    VxlanVerdict v =
        (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? VxlanVerdict::kTooLong : ParseVxlan(d, len, vni_, max_frame_);
    if (v != VxlanVerdict::kOk) {
      Drop(static_cast<int>(v), r, from[i]);
      continue;
    }
    uint8_t* frame = static_cast<uint8_t*>(iov[i].iov_base) + kVxlanHeader;
    CountFrame(r->from, frame, len - kVxlanHeader);
    forwarder.Inject(r->port, frame, len - kVxlanHeader);
  }
  forwarder.EndInjected();
  return n;
}

}  // namespace vhost
