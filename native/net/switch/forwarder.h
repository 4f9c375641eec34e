// The switch's data path: one burst of a port's guest TX frames, each copied once into the RX
// buffers of the port its destination MAC is learnt behind, or of every other port of its VLAN
// (broadcast, multicast, unknown unicast). A destination without room loses the copy (its RX drops);
// the burst goes on. Learning (the source MAC of every frame) and lookups use the MacTable. Knows
// ports only as their rings (PairRx, the source's PairContext): no device, no thread; the switch
// (net/switch/switch.h) runs it on its thread, the ring fuzzer on its own.
#pragma once

#include <cstdint>
#include <vector>

#include "core/device.h"
#include "net/port.h"
#include "net/rx_reservation.h"
#include "net/switch/mac_table.h"
#include "net/tx_frame.h"

namespace vhost {

class Forwarder {
 public:
  static constexpr int kMaxPorts = 256;
  // TX frames a port may send per burst: the switch gives each port one burst per round.
  static constexpr int kBudget = 32;

  // A port that is not a guest (the tap uplink): frames to it are handed over here, in place (the
  // segments are the sender's buffers, `skip` bytes of its header first), never kept.
  class Sink {
   public:
    virtual ~Sink() = default;
    virtual void Send(const Segment* segs, int nseg, uint32_t skip, uint32_t len) = 0;
  };

  // One port as the data path sees it.
  struct Port {
    int number = -1;  // 0..kMaxPorts-1, what the MAC table stores
    uint16_t vlan = 1;
    // Split horizon: ports of one group never forward to each other (a VXLAN uplink's remotes).
    // Unset (-1): Add makes it the port's own number, a group of one.
    int16_t group = -1;
    PairRx rx;                      // where frames to it go (rx.rx null: nowhere yet)
    VhostDevice* device = nullptr;  // whose rings these are (null: no device, never faults)
    Sink* sink = nullptr;           // not a guest: frames to it go here instead of to rx
    bool dirty = false;             // RX used entries pushed since the last publish
    bool faulted() const { return device && device->memory_faulted(); }
  };

  Forwarder(uint32_t max_macs, uint32_t ageing_s) : table_(max_macs, ageing_s) {}

  // With the data path stopped: `port` (its number free) joins, in flooding order; or leaves, its
  // MACs forgotten.
  void Add(Port* port);
  void Remove(Port* port);
  Port* port(int number) const { return number >= 0 && number < kMaxPorts ? by_number_[number] : nullptr; }
  MacTable& table() { return table_; }
  // With the data path stopped: every frame that enters the switch (from a guest's TX or a tap) is
  // recorded here once, as it leaves its source port (null: no capture of the switch).
  void set_capture(CaptureRing* ring) { capture_ = ring; }
  uint64_t flooded() const { return flooded_; }

  // Forwards up to kBudget frames of `src`'s guest TX (c: its pair), then publishes the used entries
  // of its TX ring and of every RX ring it delivered to. Returns the chains taken.
  int Forward(Port& src, PairContext& c);
  // A frame from a port that is not a guest (`frame`: the Ethernet frame, in this process's memory,
  // not the guest's): forwarded as a guest's would be. EndInjected publishes what they delivered.
  void Inject(Port& src, uint8_t* frame, uint32_t len);
  void EndInjected() {
    Flush();
    if (capture_) capture_->EndBurst();
  }
  // After a SIGBUS left a burst in the middle (the faulted devices already marked): what it held on a
  // side whose memory is fine goes back (RX buffers untouched; the TX frame used, counted dropped).
  void AfterFault();
  // The two sides of the copy in hand (null: none), for a fault whose address names no device.
  Port* held_source() const { return held_src_; }
  Port* held_destination() const { return held_dst_; }

 private:
  struct Copy;
  template <typename L>
  int Burst(Port& src, PairContext& c);
  // Routes the frames the burst's walk took in one piece (taken_), in order.
  void RouteTaken(Port& src, PairContext& c);
  // Learns the source, then delivers the frame in hand (src_segs_) to where its destination is.
  void Route(Port& src, const uint8_t macs[12], uint32_t src_hdr, uint32_t len);
  void Deliver(Port& dst, uint32_t src_hdr, uint32_t len);
  template <typename L>
  void DeliverAs(Port& dst, uint32_t src_hdr, uint32_t len);
  void Flush();
  // Makes the copies DeliverAs queued, in order; CopyOne skips a side that faulted.
  void RunCopies();
  void CopyOne(const Copy& j);

  MacTable table_;
  std::vector<Port*> ports_;  // flooding order
  Port* by_number_[kMaxPorts] = {};
  uint64_t flooded_ = 0;
  CaptureRing* capture_ = nullptr;

  // Scratch: the frame in hand, the RX buffers reserved for one copy, the ports delivered to.
  TxFrame tx_;
  RxReservation rx_;
  const Segment* src_segs_ = nullptr;  // the frame in hand: tx_'s segments, or an injected frame's
  int src_nseg_ = 0;
  Segment injected_{};
  Port* dirty_[kMaxPorts] = {};
  int ndirty_ = 0;
  // Copies of one guest's burst in one piece, made together after its ring walk (RunCopies): each
  // first touches a receive buffer the other CPU last wrote, and back to back those misses overlap.
  struct Copy {
    Port* dst;
    const uint8_t* from;
    uint8_t* to;  // the receive buffer, at its virtio-net header
    uint32_t hdr, len;
  };
  static constexpr int kMaxCopies = 128;
  Copy copies_[kMaxCopies];
  int ncopies_ = 0;
  int copying_ = -1;  // the copy in hand, or -1
  // Frames in one piece the walk took (and returned as used, unpublished), routed after it so that
  // the first lines of all of them, written by the other CPU, are fetched together (prefetched).
  struct Taken {
    uint8_t* frame;  // after the virtio-net header
    uint32_t len;
  };
  Taken taken_[kBudget];
  int ntaken_ = 0;
  int routing_ = -1;  // the taken frame in hand, or -1
  // The last frame's addresses and where it went, within one burst (one source, one clock second):
  // a frame with the same ones needs no second learning nor lookup (a stream's frames all do).
  uint8_t last_macs_[12] = {};
  int last_to_ = MacTable::kNoPort;
  bool last_valid_ = false;
  Port* copy_src_ = nullptr;  // whose burst the copies are from
  Queue* copy_tx_ = nullptr;  // its TX queue
  // What a burst holds, for AfterFault.
  Port* held_src_ = nullptr;  // its TX frame (tx_)
  Queue* held_tx_ = nullptr;
  Port* held_dst_ = nullptr;  // its RX reservation (rx_)
};

}  // namespace vhost
