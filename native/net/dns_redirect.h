// The user port's --dns: the guest asks the DNS address of its network (10.0.2.3:53), and the answer
// must come from a resolver the user named. libslirp forwards that address only to the first server
// of the host's /etc/resolv.conf, with no way to choose another, so the frames are rewritten around it:
// toward libslirp, UDP and TCP to (DNS address, 53) get the resolver as destination (the gateway
// address for the host's 127.0.0.1, which libslirp maps to it); toward the guest, UDP and TCP from the
// resolver get (DNS address, 53) back as source. Checksums are updated incrementally (RFC 1624).
// Stateless: the guest talking to the resolver's address and port itself is rewritten too (named in
// the option's help). Frames are in our own memory (copies), never the guest's.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>

namespace vhost {

class DnsRedirect {
 public:
  // `dns`: the address the guest is told (libslirp's vnameserver); `to`/`to_port`: where its
  // queries go, as libslirp must see them (the gateway for the host's loopback).
  DnsRedirect(in_addr dns, in_addr to, uint16_t to_port) : dns_(dns), to_(to), to_port_(to_port) {}

  // A guest frame (Ethernet) on its way into libslirp.
  void ToHost(uint8_t* frame, size_t len) const;
  // A frame from libslirp on its way to the guest.
  void ToGuest(uint8_t* frame, size_t len) const;

 private:
  // The IPv4 TCP or UDP header of a frame, if it has one (first fragment, lengths checked).
  struct L4 {
    uint8_t* ip;
    uint8_t* l4;
    uint8_t* checksum;  // null: UDP without a checksum
  };
  static bool FindL4(uint8_t* frame, size_t len, L4* out);
  // Replaces the address at ip + addr_at and the port at l4 + port_at, fixing the checksums.
  static void Rewrite(const L4& h, size_t addr_at, size_t port_at, in_addr addr, uint16_t port);

  in_addr dns_;
  in_addr to_;
  uint16_t to_port_;
};

}  // namespace vhost
