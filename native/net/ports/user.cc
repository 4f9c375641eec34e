#include "net/ports/user.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "net/ports/registry.h"
#include "net/segment_cursor.h"

namespace vhost {

UserPort::UserPort(std::unique_ptr<SlirpLoop> loop, std::unique_ptr<DnsRedirect> dns)
    : loop_(std::move(loop)), dns_(std::move(dns)), frame_(kMaxTsoFrame), segment_(kMaxFrame) {}

template <typename L>
int UserPort::FromGuest(PairContext& c) {
  const uint32_t hdr_len = c.settings.hdr_len;
  int moved = 0;
  while (moved < kBurst) {
    TxFrame::Result t = tx_.Next<L>(c.mem, c.settings, c.tx, c.report);
    if (t == TxFrame::Result::kNone) break;
    moved++;
    if (t == TxFrame::Result::kDropped) continue;
    const uint32_t len = tx_.chain().len - hdr_len;
    if (len < 14 || len > frame_.size()) {
      c.tx.Count(kStatDrops);  // no Ethernet header, or larger than a TSO frame can be
      tx_.Done<L>(c.tx);
      continue;
    }
    uint8_t hdr[kNetHdrMrg];
    SegmentCursor src(tx_.segments(), tx_.chain().nseg);
    src.Read(hdr, hdr_len);
    src.Read(frame_.data(), len);
    tx_.Done<L>(c.tx);
    ObserveFrame(c.tx, c.capture, frame_.data(), len);  // as the guest sent it, before offloads and --dns
    if (!ToStack(NetOffload::Parse(hdr), len)) c.tx.Count(kStatErrors);
  }
  return moved;
}

bool UserPort::ToStack(const NetOffload& o, uint32_t len) {
  uint8_t* frame = frame_.data();
  if (o.gso_type != kGsoNone) {
    // A TSO frame from a guest that negotiated TSO: cut into segments libslirp takes whole.
    if (!tso_ || !segmenter_.Start(frame, len, o) || !segmenter_.Fits(segment_.size())) return false;
    while (size_t n = segmenter_.Next(segment_.data(), segment_.size())) Input(segment_.data(), n);
    return true;
  }
  if ((o.flags & kNetHdrNeedsCsum) && !CompleteChecksum(frame, len, o.csum_start, o.csum_offset)) return false;
  Input(frame, len);
  return true;
}

void UserPort::Input(uint8_t* frame, size_t len) {
  if (dns_) dns_->ToHost(frame, len);
  loop_->Input(frame, len);
}

int UserPort::OnFeatures(uint64_t features, const NetSettings&, std::string*) {
  auto has = [features](int bit) { return (features >> bit) & 1; };
  tso_ = has(kFeatureHostTso4) || has(kFeatureHostTso6);
  // libslirp's frames carry valid checksums: a guest that takes GUEST_CSUM need not check them again.
  rx_header_[0] = has(kFeatureGuestCsum) ? kNetHdrDataValid : 0;
  return 0;
}

template <typename L>
int UserPort::ToGuest(PairContext& c, bool* rx_short) {
  const uint32_t hdr_len = c.settings.hdr_len;
  FrameBacklog& backlog = loop_->backlog();
  int moved = 0;
  *rx_short = false;
  // One frame at a time, copied at once: the backlog's frames are ours (no guest cache misses to
  // overlap on the reading side), and the guest's buffers are written once each.
  while (moved < kBurst && !backlog.empty()) {
    const uint32_t len = backlog.front_len();
    RxReservation::Result r = rx_.Reserve<L>(c.mem, c.settings, c.rx, hdr_len + len, c.report);
    if (r == RxReservation::Result::kShort) *rx_short = true;
    if (r == RxReservation::Result::kShort || r == RxReservation::Result::kBroken) break;
    moved++;
    if (r == RxReservation::Result::kOk) {
      if (dns_) dns_->ToGuest(backlog.front(), len);  // again after a kShort retry: a no-op then
      SegmentCursor dst = rx_.Cursor();
      WriteNetHeader(dst, hdr_len, rx_.buffers(), rx_header_);
      dst.Write(backlog.front(), len);
      ObserveFrame(c.rx, c.capture, backlog.front(), len);  // as delivered
      rx_.Commit<L>(c.rx, hdr_len + len);
    } else {
      c.rx.Count(kStatDrops);  // buffers that can never hold it
    }
    backlog.Pop();
  }
  return moved;
}

bool UserPort::Service(PairContext& c) {
  if (!c.rx.Ready() || !c.tx.Ready()) return false;
  stuck_passes_ = 0;
  return WithLayout(c.tx.ring, [&](auto layout) {
    using L = typename decltype(layout)::type;
    return ServeUntilIdle(c, true, true, [&] {
      const int in = FromGuest<L>(c);
      int served = loop_->Poll();
      bool rx_short = false;
      const int out = ToGuest<L>(c, &rx_short);
      if (uint64_t dropped = loop_->TakeDrops()) c.rx.Count(kStatDrops, dropped);
      if (in + out > 0 || served == 0) stuck_passes_ = 0;
      else if (++stuck_passes_ > kMaxStuckPasses) served = 0;
      // Guest TX is always taken (libslirp never pushes back); RX waits for buffers when it ran short.
      return BurstOutcome{in + out + served, rx_short, true};
    });
  });
}

namespace {

// "A.B.C.D/N" -> network and mask; lib/net/ports/user.ts has checked it.
bool ParseCidr(const std::string& text, in_addr* net, in_addr* mask) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos || inet_pton(AF_INET, text.substr(0, slash).c_str(), net) != 1) return false;
  const int prefix = atoi(text.c_str() + slash + 1);
  if (prefix < 8 || prefix > 27) return false;
  mask->s_addr = htonl(~0u << (32 - prefix));
  net->s_addr &= mask->s_addr;
  return true;
}

in_addr HostInNet(in_addr net, uint32_t host) { return in_addr{htonl(ntohl(net.s_addr) + host)}; }

// One forward as user.ts spells it out: "tcp:HOSTADDR:HOSTPORT:GUESTADDR:GUESTPORT" (or udp:); to
// close one, "tcp:HOSTADDR:HOSTPORT" is enough.
struct Forward {
  bool udp = false;
  in_addr host{}, guest{};
  int host_port = 0, guest_port = 0;
  std::string text;  // for messages: proto:host:hostport
};

bool ParseForward(const std::string& spec, bool with_guest, Forward* f) {
  char proto[4], host[16], guest[16];
  const int n =
      sscanf(spec.c_str(), "%3[a-z]:%15[0-9.]:%d:%15[0-9.]:%d", proto, host, &f->host_port, guest, &f->guest_port);
  if (n != (with_guest ? 5 : 3) || (strcmp(proto, "tcp") && strcmp(proto, "udp")) ||
      inet_pton(AF_INET, host, &f->host) != 1 || (with_guest && inet_pton(AF_INET, guest, &f->guest) != 1))
    return false;
  f->udp = proto[0] == 'u';
  f->text = std::string(proto) + ":" + host + ":" + std::to_string(f->host_port);
  return true;
}

}  // namespace

// Opens or closes one forward; 0, or an errno with *err set to one line.
int UserPort::OnForward(bool add, const std::string& spec, std::string* err) {
  Forward f;
  if (!ParseForward(spec, add, &f)) {
    *err = "user port: malformed forward '" + spec + "'";
    return EINVAL;
  }
  if (add && loop_->AddForward(f.udp, f.host, f.host_port, f.guest, f.guest_port) != 0) {
    const int e = errno ? errno : EADDRINUSE;
    *err = "forward " + f.text + ":" + std::to_string(f.guest_port) + ": cannot listen there (" + strerror(e) +
           "); choose another host port";
    return e;
  }
  if (!add && loop_->RemoveForward(f.udp, f.host, f.host_port) != 0) {
    *err = "forward " + f.text + ": no such forward";
    return ENOENT;
  }
  auto same = [&](const std::pair<std::string, std::string>& open) { return open.first == f.text; };
  forwards_.erase(std::remove_if(forwards_.begin(), forwards_.end(), same), forwards_.end());
  if (add) forwards_.emplace_back(f.text, spec);
  return 0;
}

void UserPort::SaveState(PortState* out) {
  for (const auto& open : forwards_) out->forwards.push_back(open.second);
  out->slirp_version = loop_->SaveState(&out->slirp);
}

int UserPort::LoadState(const PortState& in, std::string* err) {
  if (in.slirp_version < 0) return 0;  // saved by a libslirp that could not: leases start afresh
  return loop_->LoadState(in.slirp_version, in.slirp, err);
}

std::unique_ptr<Port> MakeUser(const PortOptions& options, PortError* err) {
  std::string why;
  const SlirpApi* api = LoadSlirp(&why);
  if (!api) {
    *err = PortError{ENOENT, why};
    return nullptr;
  }
  SlirpConfigV1 cfg{};
  cfg.version = 1;
  cfg.in_enabled = true;
  const std::string* net = options.String("net");
  int64_t mtu = 0, restrict = 0, host_loopback = 1, ipv6 = 1;
  if (!net || !ParseCidr(*net, &cfg.vnetwork, &cfg.vnetmask) || !options.Int("mtu", 0, 65520, &mtu) ||
      !options.Int("restrict", 0, 1, & restrict) || !options.Int("hostLoopback", 0, 1, &host_loopback) ||
      !options.Int("ipv6", 0, 1, &ipv6) || (mtu != 0 && mtu < 68)) {
    *err = PortError{EINVAL, "user port: options not checked by lib/net/ports/user.ts"};
    return nullptr;
  }
  // The addresses QEMU's -netdev user gives: gateway .2, DNS .3, leases from .15.
  cfg.vhost = HostInNet(cfg.vnetwork, 2);
  cfg.vnameserver = HostInNet(cfg.vnetwork, 3);
  cfg.vdhcp_start = HostInNet(cfg.vnetwork, 15);
  cfg.restricted = static_cast<int>(restrict);
  cfg.disable_host_loopback = host_loopback == 0;
  cfg.in6_enabled = ipv6 != 0;
  inet_pton(AF_INET6, "fec0::", &cfg.vprefix_addr6);
  cfg.vprefix_len = 64;
  inet_pton(AF_INET6, "fec0::2", &cfg.vhost6);
  inet_pton(AF_INET6, "fec0::3", &cfg.vnameserver6);
  cfg.if_mtu = cfg.if_mru = static_cast<size_t>(mtu);
  std::unique_ptr<SlirpLoop> loop = SlirpLoop::Create(*api, cfg, &why);
  if (!loop) {
    *err = PortError{EINVAL, why};
    return nullptr;
  }
  // --dns "A.B.C.D:PORT": the host's 127.0.0.1 is reached through the gateway address.
  std::unique_ptr<DnsRedirect> dns;
  const std::string* resolver = options.String("dns");
  if (resolver && !resolver->empty()) {
    char addr[16];
    int port = 0;
    in_addr to;
    if (sscanf(resolver->c_str(), "%15[0-9.]:%d", addr, &port) != 2 || inet_pton(AF_INET, addr, &to) != 1 || port < 1 ||
        port > 65535) {
      *err = PortError{EINVAL, "user port: malformed resolver '" + *resolver + "'"};
      return nullptr;
    }
    if (to.s_addr == htonl(INADDR_LOOPBACK)) to = cfg.vhost;
    dns = std::make_unique<DnsRedirect>(cfg.vnameserver, to, static_cast<uint16_t>(port));
  }
  auto port = std::make_unique<UserPort>(std::move(loop), std::move(dns));
  // Each forward of --forward, ';' between them.
  const std::string* forwards = options.String("forwards");
  for (size_t at = 0; forwards && at < forwards->size();) {
    size_t end = std::min(forwards->find(';', at), forwards->size());
    int rc = port->OnForward(true, forwards->substr(at, end - at), &why);
    if (rc != 0) {
      *err = PortError{rc, why};
      return nullptr;
    }
    at = end + 1;
  }
  return port;
}

}  // namespace vhost
