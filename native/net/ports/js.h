// The js port: a JavaScript program is the other end of the device (lib/net/frames.ts). Guest TX
// frames are copied once into the pair's ring toward JS; frames JS sends are copied once from its
// ring (any slot of the shared mapping, so an echo sends the views it got) into guest RX buffers.
// Served on the program's own thread (the device has no workers: core/inline_server.h), whenever
// the program asks for frames, sends some, or a queue was kicked.
// Back-pressure both ways: a full ring toward JS leaves guest TX waiting in the guest's ring; no
// guest RX buffers leave JS's frames in its ring (its send() waits when that is full). While no
// frames() loop runs, guest TX is dropped and counted, like a link with nobody on it.
// Everything JS writes into the mapping is read once and checked: an index out of the ring's
// reach breaks this pair's JS rings (logged once), a bad descriptor is counted and skipped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "net/frame_rings.h"
#include "net/port.h"
#include "net/rx_reservation.h"
#include "net/tx_frame.h"

namespace vhost {

class JsPort : public Port {
 public:
  const char* name() const override { return "js"; }
  bool Service(PairContext& c) override;
  int OnFrameRings(std::shared_ptr<FrameRings> rings, int pair, std::string* err) override;
  void OnReset() override;

 private:
  static constexpr int kBurst = 32;

  // Guest TX into the ring toward JS; *full when the ring had no room left for the next frame.
  template <typename L>
  int ToJs(PairContext& c, bool* full);
  // JS's frames into guest RX; *rx_short when the guest had too few buffers for the next one.
  template <typename L>
  int FromJs(PairContext& c, bool* rx_short);
  // Indexes and flags back to an empty ring (JS does the same on its side).
  void Clear();
  void Break(PairContext& c, const char* why);

  struct CopyJob {
    const uint8_t* from;
    uint8_t* to;
    uint32_t len;
  };

  std::shared_ptr<FrameRings> rings_;
  int pair_ = 0;
  uint32_t to_head_ = 0;    // ours: the shared copy is only ever written
  uint32_t from_tail_ = 0;  // likewise
  bool broken_ = false;
  TxFrame tx_;
  RxReservation rx_;
  CopyJob jobs_[kBurst];
};

}  // namespace vhost
