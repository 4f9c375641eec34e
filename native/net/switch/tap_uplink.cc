#include "net/switch/tap_uplink.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/frame_observer.h"
#include "net/ports/tap.h"
#include "net/switch/frame_iovec.h"
#include "net/tx_frame.h"

namespace vhost {

namespace {
constexpr uint8_t kZeroHeader[16] = {};
}  // namespace

std::unique_ptr<TapUplink> TapUplink::Open(const std::string& ifname, Reporter report, int* err_no, std::string* err) {
  int fd = TapPort::OpenQueue(ifname, static_cast<int>(kHeader), err_no, err);
  if (fd < 0) return nullptr;
  return std::unique_ptr<TapUplink>(new TapUplink(fd, ifname, std::move(report)));
}

TapUplink::TapUplink(int fd, std::string ifname, Reporter report)
    : fd_(fd), ifname_(std::move(ifname)), report_(std::move(report)), buffer_(kBufferSize) {
  to_tap_.stats = stats_;
  from_tap_.stats = stats_ + kStatsStride;
  port_.sink = this;
}

TapUplink::~TapUplink() { close(fd_); }

void TapUplink::Failed(const char* what, int err) {
  if (gone_) return;
  gone_ = true;
  report_("tap " + ifname_ + ": " + what + ": " + strerror(err) +
          (err == EBADFD ? " (the interface was deleted: its switch port stays, idle)" : ""));
}

void TapUplink::Send(const Segment* segs, int nseg, uint32_t skip, uint32_t len) {
  if (gone_) {
    to_tap_.Count(kStatDrops);
    return;
  }
  const FrameIovec frame(kZeroHeader, kHeader, segs, nseg, skip, len);
  // The kernel reads the guest's buffers itself: a fault in them is EFAULT here, never a signal.
  if (writev(fd_, frame.iov, frame.count) < 0) {
    to_tap_.Count(kStatDrops);  // full (EAGAIN), down (EIO): this copy is lost, as a guest's would be
    if (errno == EBADFD) return Failed("write", errno);
    if (!write_error_reported_ && errno != EAGAIN) {
      write_error_reported_ = true;
      report_("tap " + ifname_ + ": write: " + strerror(errno) +
              (errno == EIO ? " (the interface is down: `ip link set " + ifname_ + " up`)" : ""));
    }
    return;
  }
  write_error_reported_ = false;
  // Counted from the first segment's bytes when they hold the MACs (the class needs only those).
  CountFrame(to_tap_, frame.destination(), len);
}

int TapUplink::Receive(Forwarder& forwarder) {
  int frames = 0;
  while (!gone_ && frames < Forwarder::kBudget) {
    ssize_t n = read(fd_, buffer_.data(), buffer_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        from_tap_.Count(kStatErrors);
        Failed("read", errno);
      }
      break;
    }
    frames++;
    const uint32_t len = static_cast<uint32_t>(n) > kHeader ? static_cast<uint32_t>(n) - kHeader : 0;
    if (len < 14) {
      from_tap_.Count(kStatErrors);
      continue;
    }
    uint8_t* frame = buffer_.data() + kHeader;
    CountFrame(from_tap_, frame, len);
    forwarder.Inject(port_, frame, len);
  }
  forwarder.EndInjected();
  return frames;
}

}  // namespace vhost
