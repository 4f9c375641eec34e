#include "net/ports/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/ports/registry.h"

namespace vhost {

namespace {
// virtio-net feature bits of what the guest can receive, and the tap offload each allows.
constexpr struct {
  int feature;
  unsigned tun_flag;
} kGuestOffloads[] = {
    {1, TUN_F_CSUM},     // GUEST_CSUM
    {7, TUN_F_TSO4},     // GUEST_TSO4
    {8, TUN_F_TSO6},     // GUEST_TSO6
    {9, TUN_F_TSO_ECN},  // GUEST_ECN
    {10, TUN_F_UFO},     // GUEST_UFO
};
}  // namespace

int TapPort::OpenQueue(const std::string& ifname, int hdr_len, int* err_no, std::string* err) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    *err_no = EINVAL;
    *err = "tap name must be 1.." + std::to_string(IFNAMSIZ - 1) + " characters";
    return -1;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *err_no = errno;
    *err = std::string("opening /dev/net/tun: ") + strerror(errno) + " (is the tun module loaded?)";
    return -1;
  }
  ifreq ifr{};
  memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  // Always multiqueue: every queue pair opens its own queue of the interface, one pair is one queue.
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
  unsigned offload = 0;
  const char* step = "TUNSETIFF";
  int rc = ioctl(fd, TUNSETIFF, &ifr);
  if (rc == 0) step = "TUNSETVNETHDRSZ", rc = ioctl(fd, TUNSETVNETHDRSZ, &hdr_len);
  if (rc == 0) step = "TUNSETOFFLOAD", rc = ioctl(fd, TUNSETOFFLOAD, offload);
  if (rc != 0) {
    *err_no = errno;
    *err = "tap " + ifname + ": " + step + ": " + strerror(errno);
    if (errno == EPERM)
      *err += " (run as root, or create it first with `ip tuntap add " + ifname +
              " mode tap vnet_hdr multi_queue user $USER`)";
    // The kernel refuses IFF_MULTI_QUEUE on a tap created without it.
    if (errno == EINVAL && strcmp(step, "TUNSETIFF") == 0)
      *err += " (it exists without multi_queue: delete it with `ip link del " + ifname +
              "`, or create it with `ip tuntap add " + ifname + " mode tap vnet_hdr multi_queue`)";
    if (errno == EBUSY) *err += " (another process holds the tap; stop it or choose another --tap name)";
    close(fd);
    return -1;
  }
  return fd;
}

std::unique_ptr<TapPort> TapPort::Open(const std::string& ifname, int* err_no, std::string* err) {
  int fd = OpenQueue(ifname, static_cast<int>(kNetHdrMrg), err_no, err);
  if (fd < 0) return nullptr;
  return std::unique_ptr<TapPort>(new TapPort(fd, ifname));
}

TapPort::~TapPort() {
  if (fd_ >= 0) close(fd_);
}

int TapPort::ConfigureQueue(int fd, const std::string& ifname, uint64_t features, std::string* err) {
  int hdr_len = static_cast<int>(NetSettings::FromFeatures(features).hdr_len);
  unsigned offload = 0;
  for (const auto& o : kGuestOffloads)
    if ((features >> o.feature) & 1) offload |= o.tun_flag;
  // The kernel only segments or leaves checksums partial for a guest that takes partial checksums.
  if (!(offload & TUN_F_CSUM)) offload = 0;
  if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) != 0 || ioctl(fd, TUNSETOFFLOAD, offload) != 0) {
    int e = errno;
    *err = "tap " + ifname + ": setting header size/offloads: " + strerror(e);
    return e;
  }
  return 0;
}

int TapPort::OnFeatures(uint64_t features, const NetSettings& settings, std::string* err) {
  int rc = ConfigureQueue(fd_, ifname_, features, err);
  if (rc == 0) hdr_len_ = settings.hdr_len;
  return rc;
}

// Written as the guest's own frames are: a zeroed virtio-net header (no offload), then the frame.
bool TapPort::OnAnnounce(const uint8_t* frame, uint32_t len) {
  uint8_t header[kNetHdrMrg] = {};
  iovec iov[2] = {{header, hdr_len_}, {const_cast<uint8_t*>(frame), len}};
  return writev(fd_, iov, 2) == static_cast<ssize_t>(hdr_len_ + len);
}

// TUNSETQUEUE: a detached queue is no longer one the kernel picks for frames to the guest, so none
// wait on a queue whose pair the guest does not serve; the interface keeps its other queues.
int TapPort::OnActive(bool active, std::string* err) {
  if (active == attached_) return 0;
  ifreq ifr{};
  ifr.ifr_flags = active ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
  if (ioctl(fd_, TUNSETQUEUE, &ifr) != 0) {
    int e = errno;
    *err = "tap " + ifname_ + ": " + (active ? "attaching" : "detaching") + " a queue: " + strerror(e);
    return e;
  }
  attached_ = active;
  return 0;
}

template <typename L>
int TapPort::GuestTx(PairContext& ctx) {
  const NetSettings& settings = ctx.settings;
  Queue& tx = ctx.tx;
  const Reporter& report = ctx.report;
  int moved = 0;
  iovec iov[TxFrame::kMaxSegs];
  while (moved < kBurst) {
    TxFrame::Result r = tx_.Next<L>(ctx.mem, settings, tx, report);
    if (r == TxFrame::Result::kNone) break;
    moved++;
    if (r == TxFrame::Result::kDropped) continue;
    const Chain& c = tx_.chain();
    for (int i = 0; i < c.nseg; i++) iov[i] = iovec{tx_.segments()[i].ptr, tx_.segments()[i].len};
    // The header goes through as the guest wrote it: the kernel does the offloads it asks for.
    ssize_t n = writev(fd_, iov, c.nseg);
    if (n < 0) {
      tx.Count(kStatDrops);
      if (!tx_error_reported_) {
        report("tap " + ifname_ + ": write: " + strerror(errno) +
               (errno == EIO ? " (the interface is down: `ip link set " + ifname_ + " up`)" : ""));
        tx_error_reported_ = true;
      }
    } else {
      tx_error_reported_ = false;
      ObserveFrame(tx, ctx.capture, tx_.segments(), c.nseg, settings.hdr_len, c.len - settings.hdr_len);
    }
    tx_.Done<L>(tx);
  }
  return moved;
}

template <typename L>
int TapPort::GuestRx(PairContext& c, bool* rx_short, bool* tap_empty) {
  const NetSettings& settings = c.settings;
  Queue& rx = c.rx;
  const Reporter& report = c.report;
  const uint32_t hdr_len = settings.hdr_len;
  int moved = 0;
  while (moved < kBurst) {
    if (pending_len_ == 0) {
      ssize_t n = read(fd_, bounce_.data(), bounce_.size());
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) *tap_empty = true;
        else report("tap " + ifname_ + ": read: " + strerror(errno));
        break;
      }
      if (static_cast<uint32_t>(n) < hdr_len) {
        rx.Count(kStatErrors);
        continue;
      }
      pending_len_ = static_cast<uint32_t>(n);
    }
    RxReservation::Result r = rx_.Reserve<L>(c.mem, settings, rx, pending_len_, report);
    if (r == RxReservation::Result::kShort) {
      *rx_short = true;  // keep the frame until the guest posts buffers
      break;
    }
    if (r == RxReservation::Result::kBroken) break;
    moved++;
    if (r == RxReservation::Result::kTooSmall) {
      rx.Count(kStatDrops);
      pending_len_ = 0;
      continue;
    }
    SegmentCursor dst = rx_.Cursor();
    WriteNetHeader(dst, hdr_len, rx_.buffers(), bounce_.data());
    dst.Write(bounce_.data() + hdr_len, pending_len_ - hdr_len);
    // The bounce buffer holds what was just written, in one piece.
    ObserveFrame(rx, c.capture, bounce_.data() + hdr_len, pending_len_ - hdr_len);
    rx_.Commit<L>(rx, pending_len_);
    pending_len_ = 0;
  }
  return moved;
}

bool TapPort::Service(PairContext& c) {
  if (!c.rx.Ready() || !c.tx.Ready()) return false;
  return WithLayout(c.tx.ring, [&](auto layout) {
    using L = typename decltype(layout)::type;
    return ServeUntilIdle(c, true, true, [&] {
      bool rx_short = false, tap_empty = false;
      int sent = GuestTx<L>(c);
      int received = GuestRx<L>(c, &rx_short, &tap_empty);
      // Idle, the tap fd is edge-triggered: we stop reading it only when it is empty (a new frame
      // wakes us) or when the guest has no buffers (its RX kick wakes us).
      return BurstOutcome{sent + received, rx_short, true};
    });
  });
}

// options: tap, the interface name (lib/net/ports/tap.ts).
std::unique_ptr<Port> MakeTap(const PortOptions& options, PortError* err) {
  const std::string* name = options.String("tap");
  if (!name) {
    *err = PortError{EINVAL, "the tap port needs an interface name (tap)"};
    return nullptr;
  }
  return TapPort::Open(*name, &err->err_no, &err->message);
}

}  // namespace vhost
